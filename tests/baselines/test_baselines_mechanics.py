"""Bookkeeping shared by all baselines: distinct queries, running max, valid edges, seeding."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from baselines_testlib import HYPERPARAMETERS, NUM_ACTIONS, NUM_ARCHS, QUERIES, SEEDS

from jaxnas.baselines import (
    ALGORITHMS,
    BaselineConfigError,
    common,
    resolved_hyperparameters,
    run_many,
)
from jaxnas.errors import ConfigError

KEY_SEED = 42


@pytest.fixture(scope="module", params=list(ALGORITHMS))
def full_run(request, cube6, run_shared):
    """Every algorithm with a budget of all N=64 architectures, 16 seeds."""
    neighbours, values = cube6
    return request.param, run_shared(request.param, neighbours, values, KEY_SEED)


def test_shapes_and_dtypes(full_run):
    _, res = full_run
    assert res.best_so_far.shape == (SEEDS, QUERIES) and res.best_so_far.dtype == np.float32
    assert res.queried.shape == (SEEDS, QUERIES) and res.queried.dtype == np.int32
    assert res.parents.shape == (SEEDS, QUERIES) and res.parents.dtype == np.int32
    assert res.num_queried.shape == (SEEDS,)


def test_queries_are_distinct_and_best_is_running_max(full_run, cube6):
    algo, res = full_run
    _, values = cube6
    for s in range(SEEDS):
        n = int(res.num_queried[s])
        q = res.queried[s, :n]
        assert n >= QUERIES // 2, (algo, s, n)
        assert len(set(q.tolist())) == n, f"{algo} seed {s} queried an architecture twice"
        assert ((q >= 0) & (q < NUM_ARCHS)).all()
        np.testing.assert_array_equal(res.best_so_far[s, :n], np.maximum.accumulate(values[q]))
        # Padding after an early stop (only possible for evolution here).
        assert (res.queried[s, n:] == -1).all()
        assert (res.best_so_far[s, n:] == res.best_so_far[s, n - 1]).all()


def test_budget_of_all_architectures_queries_each_exactly_once(full_run):
    algo, res = full_run
    if algo == "evolution":
        # Late on, most children are already queried (free), so a run may reach its cycle cap
        # just short of the whole space; it still covers nearly all of it.
        assert res.num_queried.mean() > 0.9 * NUM_ARCHS
        return
    assert (res.num_queried == NUM_ARCHS).all()
    for s in range(SEEDS):
        assert sorted(res.queried[s].tolist()) == list(range(NUM_ARCHS))


def test_every_mutation_or_move_follows_a_valid_edge(full_run, cube6):
    algo, res = full_run
    neighbours, _ = cube6
    for s in range(SEEDS):
        n = int(res.num_queried[s])
        for q in range(n):
            parent = int(res.parents[s, q])
            if parent < 0:
                continue
            assert int(res.queried[s, q]) in neighbours[parent][neighbours[parent] >= 0]
            # The parent was itself queried earlier (it is in the population / the climb).
            assert parent in res.queried[s, :q]
    if algo == "random_search":
        assert (res.parents == -1).all()
    else:
        assert (res.parents >= 0).mean() > 0.5


def test_vmapped_equals_per_seed_loop_and_is_reproducible(full_run, cube6, run_shared):
    algo, res = full_run
    neighbours, values = cube6
    fn = jax.jit(partial(ALGORITHMS[algo], num_queries=QUERIES, **HYPERPARAMETERS[algo]))
    keys = jax.random.split(jax.random.PRNGKey(KEY_SEED), SEEDS)
    for s in (0, 5, SEEDS - 1):
        one = fn(keys[s], neighbours, values)
        np.testing.assert_array_equal(np.asarray(one.queried), res.queried[s])
        np.testing.assert_array_equal(np.asarray(one.best_so_far), res.best_so_far[s])
        np.testing.assert_array_equal(np.asarray(one.parents), res.parents[s])
    again = run_shared(algo, neighbours, values, KEY_SEED)
    np.testing.assert_array_equal(again.queried, res.queried)
    np.testing.assert_array_equal(again.best_so_far, res.best_so_far)
    # Different seeds (within a batch and across keys) explore differently.
    assert len({tuple(row[:10]) for row in res.queried.tolist()}) > SEEDS // 2
    other = run_shared(algo, neighbours, values, KEY_SEED + 1)
    assert (other.queried != res.queried).any()


def test_runs_stopped_by_the_iteration_cap_are_padded(full_run):
    algo, res = full_run
    if algo != "evolution":
        assert (res.num_queried == QUERIES).all()
        return
    cap = resolved_hyperparameters(algo, NUM_ARCHS, NUM_ACTIONS, QUERIES, **HYPERPARAMETERS[algo])
    for s in np.flatnonzero(res.num_queried < QUERIES):
        n = int(res.num_queried[s])
        assert res.num_steps[s] == cap["max_cycles"]
        assert (res.queried[s, n:] == -1).all() and (res.parents[s, n:] == -1).all()
        assert (res.best_so_far[s, n:] == res.best_so_far[s, n - 1]).all()


def test_query_log_records_new_architectures_only_and_pads():
    values = jnp.asarray([0.5, 2.0, 1.0, 3.0], jnp.float32)

    @jax.jit
    def play(events):
        # events: [E, 3] rows of (arch, parent, want); one compiled function, not many eager ops
        def step(log, e):
            return common.record(log, values, e[0], e[1], e[2] > 0), None

        log, _ = jax.lax.scan(step, common.empty_log(4, 3), events)
        return log, common.finish(log, num_steps=events.shape[0])

    events = [(1, -1, 1), (1, 2, 1), (0, 1, 0), (2, 1, 1)]  # repeat and unwanted: not recorded
    log, res = play(jnp.asarray(events, jnp.int32))
    assert int(res.num_queried) == 2
    np.testing.assert_array_equal(res.queried, [1, 2, -1])
    np.testing.assert_array_equal(res.parents, [-1, 1, -1])
    np.testing.assert_array_equal(res.best_so_far, [2.0, 2.0, 2.0])
    events += [(3, 2, 1), (0, 2, 1)]  # the budget of 3 is full after the first of these
    log, res = play(jnp.asarray(events, jnp.int32))
    np.testing.assert_array_equal(res.queried, [1, 2, 3])
    np.testing.assert_array_equal(res.parents, [-1, 1, 2])
    np.testing.assert_array_equal(res.best_so_far, [2.0, 2.0, 3.0])
    assert not bool(log.visited[0])


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_user_errors(algo, cube6):
    neighbours, values = cube6
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="only 64 architectures"):
        run_many(algo, key, neighbours, values, 65, 2)
    with pytest.raises(ConfigError, match="only 64 architectures"):
        ALGORITHMS[algo](key, neighbours, values, 65)
    with pytest.raises(BaselineConfigError, match="num_queries"):
        run_many(algo, key, neighbours, values, 0, 2)
    with pytest.raises(BaselineConfigError, match="num_seeds"):
        run_many(algo, key, neighbours, values, 10, 0)
    with pytest.raises(BaselineConfigError, match="unknown hyperparameter"):
        run_many(algo, key, neighbours, values, 10, 2, temperature=1.0)


def test_unknown_algorithm_and_bad_inputs(cube6):
    neighbours, values = cube6
    key = jax.random.PRNGKey(0)
    with pytest.raises(ConfigError, match="unknown baseline 'bayesopt'"):
        run_many("bayesopt", key, neighbours, values, 10, 2)
    with pytest.raises(BaselineConfigError, match="population_size"):
        run_many("evolution", key, neighbours, values, 10, 2, population_size=65)
    with pytest.raises(BaselineConfigError, match="sample_size"):
        run_many("evolution", key, neighbours, values, 10, 2, population_size=4, sample_size=5)
    # chex guards the array boundary: wrong dtype / mismatched shapes are bugs, not user input.
    with pytest.raises(AssertionError):
        ALGORITHMS["local_search"](key, neighbours.astype(np.float32), values, 10)
    with pytest.raises(AssertionError):
        ALGORITHMS["random_search"](key, neighbours, values[:10], 5)
