"""A persistent XLA compilation cache for the command lines.

Compiling the training loop takes tens of seconds on a CPU; with the cache, a second run of the
same configuration starts at once. ``JAX_COMPILATION_CACHE_DIR`` overrides the location.
"""

from __future__ import annotations

import os
from pathlib import Path


def enable_compilation_cache() -> None:
    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return  # jax reads the variable itself
    path = Path(os.environ.get("JAXNAS_CACHE_DIR", Path.home() / ".cache" / "jaxnas")) / "xla"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # no writable cache: compile every time
    jax.config.update("jax_compilation_cache_dir", str(path))
