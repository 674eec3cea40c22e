"""Finding benchmark data, loading it into a :class:`BenchmarkTable`, and caching conversions.

Where the data is looked for, first match wins:
1. the ``data`` argument (``--data PATH`` on command lines): a file or a folder;
2. the environment variable ``JAXNAS_DATA``;
3. ``../shared/data/transnas-bench-101`` beside the repository (and beside the working directory);
4. ``./data``.
A folder is searched for ``<space>.csv``, then ``transnas-bench_v10141024.pth``, then any single
``*.pth``.

Converted tables are cached as ``.npz`` under ``JAXNAS_CACHE_DIR`` (default
``~/.cache/jaxnas``), keyed by a hash of the source file's bytes and the loading options, so an
edited source file is converted again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from jaxnas.data import names as arch_names
from jaxnas.data.csv_table import read_csv
from jaxnas.data.table import BenchmarkTable, table_from_numpy
from jaxnas.errors import ConfigError, DataError

OFFICIAL_FILE = "transnas-bench_v10141024.pth"
_CACHE_VERSION = 1
_HOW_TO_GET = (
    "Pass --data PATH (or set JAXNAS_DATA) to the shared CSV folder, or download the official "
    f"{OFFICIAL_FILE} from the TransNAS-Bench-101 project "
    "(https://github.com/yawen-d/TransNASBench) and point --data at it."
)


def default_search_path() -> list[Path]:
    candidates = []
    env = os.environ.get("JAXNAS_DATA")
    if env:
        candidates.append(Path(env))
    repo_root = Path(__file__).resolve().parents[2]
    for base in (repo_root, Path.cwd()):
        candidates.append(base.parent / "shared" / "data" / "transnas-bench-101")
    candidates.append(Path.cwd() / "data")
    out = []
    for c in candidates:
        if c not in out:
            out.append(c)
    return out


def _file_in_folder(folder: Path, space: str) -> Optional[Path]:
    csv_file = folder / f"{space}.csv"
    if csv_file.is_file():
        return csv_file
    official = folder / OFFICIAL_FILE
    if official.is_file():
        return official
    pth = sorted(folder.glob("*.pth"))
    if len(pth) == 1:
        return pth[0]
    if len(pth) > 1:
        raise DataError(
            f"{folder}: several .pth files ({', '.join(p.name for p in pth)}); "
            "pass --data with the one to use"
        )
    return None


def resolve_data_file(space: str, data=None) -> Path:
    """The file holding ``space``'s table, following the search order in the module docstring."""
    if space not in arch_names.SPACES:
        raise ConfigError(f"unknown search space {space!r}; choose one of {', '.join(arch_names.SPACES)}")
    if data is not None:
        path = Path(data).expanduser()
        if path.is_file():
            return path
        if path.is_dir():
            found = _file_in_folder(path, space)
            if found is None:
                raise DataError(
                    f"{path}: no {space}.csv, {OFFICIAL_FILE} or other .pth file in this folder. "
                    + _HOW_TO_GET
                )
            return found
        raise DataError(f"{path}: no such file or folder. " + _HOW_TO_GET)
    env = os.environ.get("JAXNAS_DATA")
    if env and not Path(env).expanduser().exists():
        # A typo in the variable must not silently load other data from the fallbacks.
        raise DataError(f"JAXNAS_DATA={env}: no such file or folder. " + _HOW_TO_GET)
    looked = default_search_path()
    for folder in looked:
        if folder.is_file():
            return folder
        if folder.is_dir():
            found = _file_in_folder(folder, space)
            if found is not None:
                return found
    raise DataError(
        f"no TransNAS-Bench-101 data for the {space} space; looked in: "
        + ", ".join(str(p) for p in looked)
        + ". "
        + _HOW_TO_GET
    )


def _cache_dir() -> Path:
    return Path(os.environ.get("JAXNAS_CACHE_DIR", Path.home() / ".cache" / "jaxnas"))


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cache_path(path: Path, space: str, options: dict) -> Path:
    key = json.dumps(
        {"v": _CACHE_VERSION, "sha256": _file_digest(path), "space": space, **options},
        sort_keys=True,
    )
    return _cache_dir() / f"{space}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


def _write_cache(cache_file: Path, table: BenchmarkTable) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"valid": np.asarray(table.valid), "tasks": np.asarray(table.tasks)}
        if table.test is not None:
            arrays["test"] = np.asarray(table.test)
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, cache_file)
    except OSError:
        pass  # A read-only home only costs the next load its conversion time.


def _read_cache(cache_file: Path, space: str, source: Path) -> Optional[BenchmarkTable]:
    try:
        with np.load(cache_file) as z:
            return table_from_numpy(
                space,
                [str(t) for t in z["tasks"]],
                z["valid"],
                z["test"] if "test" in z.files else None,
                source=str(source),
            )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        # A damaged cache file (empty, truncated) only costs a fresh conversion.
        return None


def load_table(
    space: str = "micro",
    data=None,
    *,
    tasks: Optional[Sequence[str]] = None,
    epoch: str = "final",
    metrics: Optional[dict] = None,
    use_cache: bool = True,
) -> BenchmarkTable:
    """Loads the benchmark table of ``space`` (``"micro"`` or ``"macro"``).

    data: a CSV file, an official ``.pth`` file or a folder (see the module docstring for the
        default search order).
    tasks: task columns to keep, in this order (default: all).
    epoch: ``"final"`` or ``"best"`` (best validation epoch); only the ``.pth`` source has
        per-epoch values, a CSV holds one value per task.
    metrics: ``{task: base metric}`` overrides for the ``.pth`` source, e.g.
        ``{"segmentsemantic": "mIoU"}``.
    """
    if epoch not in ("final", "best"):
        raise ConfigError(f"epoch must be 'final' or 'best', got {epoch!r}")
    path = resolve_data_file(space, data)
    is_pth = path.suffix == ".pth" or not path.suffix == ".csv" and _looks_binary(path)
    if not is_pth and (epoch != "final" or metrics):
        raise ConfigError(
            f"{path}: a CSV table holds one value per task; epoch='best' and metrics= need the "
            f"official {OFFICIAL_FILE}"
        )
    options = {"epoch": epoch, "metrics": metrics or {}, "kind": "pth" if is_pth else "csv"}
    cache_file = _cache_path(path, space, options) if use_cache else None
    table = _read_cache(cache_file, space, path) if cache_file and cache_file.exists() else None
    if table is None:
        if is_pth:
            from jaxnas.data.pth import read_pth

            tables = read_pth(path, epoch=epoch, metrics=metrics)
            if space not in tables:
                raise DataError(
                    f"{path}: holds no {space} space (spaces present: {', '.join(tables)})"
                )
            table = tables[space]
        else:
            table = read_csv(path)
            if table.space != space:
                raise DataError(
                    f"{path}: holds {table.space} architectures, but the {space} space was asked for"
                )
        if cache_file is not None:
            _write_cache(cache_file, table)
    if tasks is not None:
        tasks = list(tasks)
        unknown = [t for t in tasks if t not in table.tasks]
        if unknown:
            raise ConfigError(
                f"unknown task(s) {', '.join(map(repr, unknown))} in {path}; tasks present: "
                f"{', '.join(table.tasks)}"
            )
        table = table.select_tasks(tasks)
    return table


def _looks_binary(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(4)
    return head.startswith(b"PK") or head[:1] == b"\x80"
