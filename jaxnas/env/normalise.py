"""Per-task normalisation of metrics to [0, 1] (higher is better)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

NORMALISATIONS = ("minmax", "rank")


def normalise(values, mode: str) -> np.ndarray:
    """``minmax``: (v - min) / (max - min). ``rank``: the quantile of v in the table, in [0, 1],
    ties sharing their average rank (so equal metrics always get equal scores)."""
    values = np.asarray(values, np.float64)
    if mode == "minmax":
        lo, hi = values.min(), values.max()
        out = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    elif mode == "rank":
        n = values.size
        order = np.sort(values)
        below = np.searchsorted(order, values, side="left")
        not_above = np.searchsorted(order, values, side="right")
        avg_rank = (below + not_above - 1) / 2.0  # 0-based average rank among ties
        out = avg_rank / (n - 1) if n > 1 else np.zeros_like(values)
    else:
        raise ValueError(f"unknown normalisation {mode!r}; choose one of {NORMALISATIONS}")
    return out.astype(np.float32)


def normalise_jnp(values, mode: str):
    return jnp.asarray(normalise(np.asarray(values), mode))
