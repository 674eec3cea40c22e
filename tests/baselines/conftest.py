"""Fixtures of the baseline tests (helpers and constants live in baselines_testlib)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from baselines_testlib import (
    CUBE_DIM,
    HYPERPARAMETERS,
    MICRO_CSV,
    NUM_ACTIONS,
    NUM_ARCHS,
    QUERIES,
    SEEDS,
    hypercube_neighbours,
)


@pytest.fixture(scope="session")
def cube6():
    """d=6 hypercube (N=64, A=8) with a random, multimodal landscape."""
    neighbours = hypercube_neighbours(CUBE_DIM)
    values = np.random.default_rng(0).normal(size=NUM_ARCHS).astype(np.float32)
    return neighbours, values


@pytest.fixture(scope="session")
def run_shared():
    """``run_shared(algo, neighbours, values, seed)`` -> numpy BaselineResult [SEEDS, QUERIES]
    with the shared configuration (neighbours must be [64, 8])."""
    import jax

    from jaxnas.baselines import run_many

    def run(algo, neighbours, values, seed=0):
        assert neighbours.shape == (NUM_ARCHS, NUM_ACTIONS)
        res = run_many(
            algo,
            jax.random.PRNGKey(seed),
            neighbours,
            values,
            QUERIES,
            SEEDS,
            **HYPERPARAMETERS[algo],
        )
        return jax.tree_util.tree_map(np.asarray, res)

    return run


@pytest.fixture(scope="session")
def micro_class_object() -> np.ndarray:
    """class_object validation accuracy of all 4096 micro architectures, canonical order,
    read straight from the CSV (independent of the package's loader)."""
    from jaxnas.data.names import name_to_index

    if not MICRO_CSV.exists():
        pytest.skip(f"real data not found at {MICRO_CSV}")
    index = name_to_index("micro")
    values = np.full(len(index), np.nan, np.float32)
    with open(MICRO_CSV, newline="") as f:
        for row in csv.DictReader(f):
            values[index[row["arch"]]] = float(row["class_object"])
    assert not np.isnan(values).any()
    return values
