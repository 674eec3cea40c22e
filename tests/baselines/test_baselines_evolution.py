"""Regularised evolution: initial population, mutations along edges, better than random."""

from __future__ import annotations

import math

import numpy as np
import pytest
from baselines_testlib import CUBE_DIM, HYPERPARAMETERS, NUM_ARCHS, hypercube_neighbours

POP = HYPERPARAMETERS["evolution"]["population_size"]
KEYS = range(4)  # 4 keys x 16 seeds = 64 runs per algorithm, one compiled function each


@pytest.fixture(scope="module")
def smooth():
    """A smooth landscape on the hypercube: a positive weight per bit plus small noise, so a
    mutation of a good architecture is likely good too."""
    rng = np.random.default_rng(1)
    weights = rng.uniform(0.5, 1.5, CUBE_DIM)
    bits = (np.arange(NUM_ARCHS)[:, None] >> np.arange(CUBE_DIM)) & 1
    values = (bits @ weights + 0.1 * rng.normal(size=NUM_ARCHS)).astype(np.float32)
    return hypercube_neighbours(CUBE_DIM), values


@pytest.fixture(scope="module")
def runs(smooth, run_shared):
    neighbours, values = smooth
    out = {}
    for algo in ("random_search", "evolution"):
        res = [run_shared(algo, neighbours, values, seed=k) for k in KEYS]
        out[algo] = res
    return out


def test_initial_population_then_children_of_members(runs, smooth):
    neighbours, _ = smooth
    for res in runs["evolution"]:
        for s in range(res.queried.shape[0]):
            n = int(res.num_queried[s])
            parents, q = res.parents[s], res.queried[s]
            assert (parents[:POP] == -1).all(), "the initial population is drawn at random"
            assert (parents[POP:n] >= 0).all(), "every later query is a mutated child"
            for i in range(POP, n):
                assert q[i] in neighbours[parents[i]]
                assert parents[i] in q[:i]


def test_evolution_beats_random_search_on_a_smooth_landscape(runs, smooth):
    _, values = smooth
    best = {a: np.concatenate([r.best_so_far for r in rs]) for a, rs in runs.items()}
    q = 20  # 8 random members + 12 children vs 21 random draws
    m_ev, m_rs = best["evolution"][:, q].mean(), best["random_search"][:, q].mean()
    se = math.hypot(
        best["evolution"][:, q].std(ddof=1) / math.sqrt(len(best["evolution"])),
        best["random_search"][:, q].std(ddof=1) / math.sqrt(len(best["random_search"])),
    )
    assert m_ev > m_rs + 4 * se, (m_ev, m_rs, se)
    # ... and it reaches the optimum much sooner (random search: 32.5 queries on average).
    hit = {a: (b == values.max()).argmax(axis=1) for a, b in best.items()}
    assert (best["evolution"][:, -1] == values.max()).mean() > 0.9
    assert hit["evolution"].mean() < 0.7 * hit["random_search"].mean()
