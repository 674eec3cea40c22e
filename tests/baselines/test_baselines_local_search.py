"""Local search: moves along neighbour edges, climbs a unimodal landscape to its optimum."""

from __future__ import annotations

import numpy as np
import pytest
from baselines_testlib import (
    CUBE_DIM,
    NUM_ACTIONS,
    NUM_ARCHS,
    hypercube_neighbours,
    ring_distance,
    ring_neighbours,
    unimodal_values,
)

TARGET = 0b101101


@pytest.fixture(scope="module")
def cube_unimodal(run_shared):
    neighbours = hypercube_neighbours(CUBE_DIM)
    values = unimodal_values(CUBE_DIM, TARGET)
    return neighbours, values, run_shared("local_search", neighbours, values, seed=3)


def test_hypercube_optimum_found_within_the_climbing_bound(cube_unimodal):
    neighbours, values, res = cube_unimodal
    # At Hamming distance h, first improvement queries at most the (d - h) non-improving
    # neighbours plus one improving one: at most 1 + d(d+1)/2 = 22 queries in all, whereas
    # random search needs 32.5 on average to hit the optimum.
    bound = 1 + CUBE_DIM * (CUBE_DIM + 1) // 2
    for s in range(res.queried.shape[0]):
        hit = int(np.flatnonzero(res.queried[s] == TARGET)[0])
        assert hit < bound, (s, hit)
        assert res.best_so_far[s, hit] == values.max() == 0.0


def test_hypercube_climb_then_restart_only_at_the_optimum(cube_unimodal):
    neighbours, values, res = cube_unimodal
    target_neighbours = set(neighbours[TARGET][neighbours[TARGET] >= 0].tolist())
    for s in range(res.queried.shape[0]):
        q, parents = res.queried[s], res.parents[s]
        assert parents[0] == -1
        restarts = np.flatnonzero(parents[1:] == -1) + 1
        first_restart = int(restarts[0])
        before = q[:first_restart]
        # The climb only leaves the optimum once all of its neighbours have been queried ...
        assert TARGET in before and target_neighbours <= set(before.tolist())
        # ... and every query until then is strictly uphill-connected: parents' values never
        # decrease (first improvement moves to strictly better architectures only).
        pv = values[parents[1:first_restart]]
        assert (np.diff(pv) >= 0).all()
        for i in range(1, first_restart):
            assert q[i] in neighbours[parents[i]]


def test_ring_walks_straight_to_the_optimum(run_shared):
    n, target = NUM_ARCHS, 17
    neighbours = ring_neighbours(n, NUM_ACTIONS)
    values = -ring_distance(np.arange(n), target, n).astype(np.float32)
    res = run_shared("local_search", neighbours, values, seed=5)
    for s in range(res.queried.shape[0]):
        q, parents = res.queried[s], res.parents[s]
        h = int(ring_distance(q[0], target, n))
        hit = int(np.flatnonzero(q == target)[0])
        # One query per step towards the target, plus at most one for looking the wrong way
        # first at the start (afterwards the way back is already queried and free).
        assert hit in (h, h + 1) if h > 0 else hit == 0, (s, h, hit)
        for i in range(1, hit + 1):
            assert parents[i] >= 0 and q[i] in neighbours[parents[i]][:2]
            assert ring_distance(q[i], parents[i], n) == 1
        # Budget = N: the restarts eventually cover the whole ring exactly once.
        assert sorted(q.tolist()) == list(range(n))


def test_flat_landscape_never_moves_and_restarts_until_the_space_is_covered(run_shared):
    # Equal values everywhere: only strict improvements are moves, so every architecture is
    # either a (re)start or a neighbour of the start it was queried from. A climber that also
    # walked onto equal neighbours would wander or bounce between two of them forever instead.
    neighbours = hypercube_neighbours(CUBE_DIM)
    res = run_shared("local_search", neighbours, np.zeros(NUM_ARCHS, np.float32), seed=9)
    assert (res.num_queried == NUM_ARCHS).all()
    for s in range(res.queried.shape[0]):
        q, parents = res.queried[s].tolist(), res.parents[s]
        for i in range(NUM_ARCHS):
            if parents[i] >= 0:
                assert parents[q.index(int(parents[i]))] == -1, (s, i)
