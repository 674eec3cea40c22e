"""Writing results so that an interrupted write never leaves a half-written file."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def _clean(obj):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        return _clean(obj.item())
    return obj


def write_atomic(path, write) -> Path:
    """Calls ``write(tmp_path)`` then renames the temporary file over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates the file 0600; results are meant to be shared like any other file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path, obj) -> Path:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(_clean(obj), f, indent=2)
            f.write("\n")

    return write_atomic(path, write)


def save_figure(fig, path, dpi: int = 130) -> Path:
    return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"))
