"""Per-query statistics of many search runs, as plain Python lists ready for JSON."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from jaxnas.errors import ConfigError


def summarise(
    best_so_far,
    global_best: Optional[float] = None,
    global_worst: Optional[float] = None,
) -> dict:
    """Mean / spread of ``best_so_far`` [S, Q] (S runs, Q distinct queries) at every q.

    Returns a dict of Python floats/ints:

    - ``queries``: [1..Q];
    - ``mean``: mean over runs;
    - ``std``: POPULATION standard deviation (ddof=0) over runs: the spread of the S outcomes
      themselves, defined for S = 1 (0.0);
    - ``sem``: standard error of the mean, ``std_ddof1 / sqrt(S)`` (the unbiased sample
      variance; 0.0 when S = 1, where it is undefined);
    - ``final_mean``/``final_std``/``final_sem``: the same at q = Q;
    - with ``global_best`` and ``global_worst`` (the best / worst value of the whole space):
      ``normalised_mean``/``normalised_std``/``normalised_sem`` of
      ``(x - worst) / (best - worst)`` (1 = the best architecture was found); a space where
      every value is equal normalises to 1.
    """
    x = np.asarray(best_so_far, np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ConfigError(f"best_so_far must have shape [runs >= 1, queries >= 1], got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ConfigError("best_so_far contains NaN or infinite values")
    out = {"runs": int(x.shape[0]), "queries": list(range(1, x.shape[1] + 1))}
    out.update(_stats(x, ""))
    if (global_best is None) != (global_worst is None):
        raise ConfigError("give both global_best and global_worst, or neither")
    if global_best is not None:
        lo, hi = float(global_worst), float(global_best)
        if hi < lo:
            raise ConfigError(f"global_best={hi} is smaller than global_worst={lo}")
        norm = (x - lo) / (hi - lo) if hi > lo else np.ones_like(x)
        out.update(_stats(norm, "normalised_"))
    return out


def _stats(x: np.ndarray, prefix: str) -> dict:
    runs = x.shape[0]
    mean = x.mean(axis=0)
    std = x.std(axis=0, ddof=0)
    sem = x.std(axis=0, ddof=1) / math.sqrt(runs) if runs > 1 else np.zeros_like(mean)
    out = {
        f"{prefix}mean": [float(v) for v in mean],
        f"{prefix}std": [float(v) for v in std],
        f"{prefix}sem": [float(v) for v in sem],
    }
    out[f"{prefix}final_mean"] = out[f"{prefix}mean"][-1]
    out[f"{prefix}final_std"] = out[f"{prefix}std"][-1]
    out[f"{prefix}final_sem"] = out[f"{prefix}sem"][-1]
    return out
