"""Small synthetic search spaces and the shared configuration of the baseline tests.

The hypercube {0,1}^d: action b < d flips bit b. Two extra actions exercise the edge cases of a
real neighbour table: action d is invalid everywhere (-1) and action d+1 duplicates action 0
on even architectures and is invalid on odd ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
MICRO_CSV = REPO.parent / "shared" / "data" / "transnas-bench-101" / "micro.csv"

# One shared configuration, so the compiled functions are shared by every test of the package
# (compilation dominates the runtime on CPU): the d=6 cube shapes, all 64 archs as budget.
CUBE_DIM = 6
NUM_ARCHS = 2**CUBE_DIM
NUM_ACTIONS = CUBE_DIM + 2
QUERIES = NUM_ARCHS
SEEDS = 16
HYPERPARAMETERS = {
    "random_search": {},
    "local_search": {},
    "evolution": {"population_size": 8, "sample_size": 3},
}


def hypercube_neighbours(dim: int) -> np.ndarray:
    i = np.arange(2**dim)
    cols = [i ^ (1 << b) for b in range(dim)]
    cols.append(np.full_like(i, -1))
    cols.append(np.where(i % 2 == 0, i ^ 1, -1))
    return np.stack(cols, axis=1).astype(np.int32)


def hamming(a, b) -> np.ndarray:
    x = np.bitwise_xor(np.asarray(a), np.asarray(b))
    return np.array([bin(int(v)).count("1") for v in np.ravel(x)]).reshape(np.shape(x))


def unimodal_values(dim: int, target: int) -> np.ndarray:
    """Minus the Hamming distance to ``target``: ``target`` is the only local optimum (every
    other architecture has a strictly better neighbour), with many ties elsewhere."""
    return -hamming(np.arange(2**dim), target).astype(np.float32)


def ring_neighbours(n: int, num_actions: int) -> np.ndarray:
    """A cycle 0-1-...-(n-1)-0: actions 0/1 step left/right, the others are invalid (padding
    to ``num_actions`` keeps the shapes, and so the compiled functions, of the hypercube)."""
    i = np.arange(n)
    out = np.full((n, num_actions), -1, np.int32)
    out[:, 0], out[:, 1] = (i - 1) % n, (i + 1) % n
    return out


def ring_distance(a, b, n: int):
    d = np.abs(np.asarray(a) - np.asarray(b)) % n
    return np.minimum(d, n - d)
