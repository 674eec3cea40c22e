import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.agent.learner import Transition
from jaxnas.agent.replay import make_replay, priority_from_td
from jaxnas.env.types import zeros_observation

CAPACITY, SAMPLE, ALPHA = 64, 16, 0.6
L, A = 6, 24


def items(ids):
    """Transitions whose fields encode their id, so a sample can be checked against it."""
    ids = np.asarray(ids, np.int32)
    n = len(ids)
    template = zeros_observation(L, A)
    obs = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *x.shape)), template)
    obs = obs._replace(tokens=np.broadcast_to(ids[:, None], (n, L)))
    return Transition(
        obs=obs,
        action=ids,
        reward=ids.astype(np.float32),
        discount=np.full((n,), 0.5, np.float32),
        next_obs=obs._replace(features=np.broadcast_to(ids[:, None], (n, 3)).astype(np.float32)),
    )


@pytest.fixture(scope="module")
def rb():
    replay = make_replay(CAPACITY, SAMPLE, min_length=1, alpha=ALPHA)
    empty = replay.init(jax.tree.map(lambda x: x[0], items([0])))

    def many_samples(state, key, n=512):
        return jax.vmap(lambda k: replay.sample(state, k))(jax.random.split(key, n))

    return (
        replay,
        empty,
        jax.jit(replay.add),
        jax.jit(replay.update_priorities),
        jax.jit(many_samples),
    )


def fill(rb, ids, priorities, chunk=8):
    replay, state, add, _, _ = rb
    for start in range(0, len(ids), chunk):
        sl = slice(start, start + chunk)
        state = add(state, items(ids[sl]), jnp.asarray(priorities[sl], jnp.float32))
    return state


def test_new_items_get_the_given_priorities(rb):
    replay = rb[0]
    priorities = np.array([0.3, 1.7, 2.5, 0.05, 4.0], np.float32)
    state = fill(rb, list(range(5)), priorities)
    leaves = np.asarray(replay.priorities(state))
    np.testing.assert_allclose(leaves[:5], priorities**ALPHA, rtol=1e-5)
    assert (leaves[5:] == 0).all()
    assert int(replay.size(state)) == 5 and bool(replay.can_sample(state))


def test_upstream_add_truncates_max_priority_but_wrapper_does_not(rb):
    replay, empty, add = rb[:3]
    # Make max_recorded_priority 2.5 (leaf = p ** alpha).
    state = add(empty, items([0]), jnp.array([2.5 ** (1 / ALPHA)], jnp.float32))
    np.testing.assert_allclose(state.sum_tree_state.max_recorded_priority, 2.5, rtol=1e-5)
    # flashbax 0.1.3 upstream add: the new item gets int(2.5) = 2, not the max priority 2.5.
    upstream = jax.jit(replay.buffer.add)(state, items([1]))
    assert float(replay.priorities(upstream)[1]) == 2.0, "flashbax add no longer truncates"
    ours = add(state, items([1]), jnp.array([0.7], jnp.float32))
    np.testing.assert_allclose(replay.priorities(ours)[:2], [2.5, 0.7**ALPHA], rtol=1e-5)


def test_samples_only_written_slots_with_their_contents(rb):
    replay, *_, many = rb
    n = 23
    state = fill(rb, list(range(n)), np.linspace(0.1, 3.0, n))
    out = many(state, jax.random.PRNGKey(0))
    idx = np.asarray(out.indices).ravel()
    assert idx.max() < n and idx.min() >= 0
    for field in (out.transitions.action, out.transitions.obs.tokens[..., 0]):
        np.testing.assert_array_equal(np.asarray(field).ravel(), idx)
    np.testing.assert_array_equal(np.asarray(out.transitions.reward).ravel(), idx)
    leaves = np.asarray(replay.priorities(state))
    probabilities = np.asarray(out.probabilities).ravel()
    np.testing.assert_allclose(probabilities, leaves[idx] / leaves.sum(), rtol=1e-4)


def test_zero_leaf_draws_are_replaced(rb):
    # Inflate the root above the sum of its children, as float drift can: upstream sampling then
    # descends into the empty right half of the tree.
    replay, *_, many = rb
    n = 5
    state = fill(rb, list(range(n)), np.ones(n))
    tree = state.sum_tree_state
    state = state.replace(sum_tree_state=tree.replace(nodes=tree.nodes.at[0].multiply(1.2)))
    keys = jax.random.split(jax.random.PRNGKey(1), 64)
    upstream = jax.jit(jax.vmap(replay.buffer.sample, in_axes=(None, 0)))(state, keys)
    assert (np.asarray(upstream.indices) >= n).any()
    out = many(state, jax.random.PRNGKey(1))
    assert np.asarray(out.indices).max() < n
    assert (np.asarray(out.probabilities) > 0).all()
    np.testing.assert_array_equal(out.transitions.action, out.indices)


def test_sampling_frequency_follows_priority_to_the_alpha(rb):
    replay, *_, many = rb
    priorities = np.arange(1, 9, dtype=np.float32) ** 2
    state = fill(rb, list(range(8)), priorities)
    idx = np.asarray(many(state, jax.random.PRNGKey(2)).indices).ravel()
    freq = np.bincount(idx, minlength=8) / idx.size
    expected = priorities**ALPHA / (priorities**ALPHA).sum()
    np.testing.assert_allclose(freq, expected, atol=0.01)
    # Sampling in proportion to raw priorities would differ by far more than that.
    assert np.abs(priorities / priorities.sum() - expected).max() > 0.05


def test_update_priorities(rb):
    replay, _, _, update, many = rb
    state = fill(rb, list(range(8)), np.ones(8))
    indices = jnp.array([3, 5, 40], jnp.int32)  # 40 was never written
    state = update(state, indices, priority_from_td(jnp.array([1000.0, 0.0, 5.0])))
    leaves = np.asarray(replay.priorities(state))
    np.testing.assert_allclose(leaves[[3, 5]], [1000.0**ALPHA, 1e-6**ALPHA], rtol=1e-4)
    assert leaves[40] == 0  # an unwritten slot stays unsampleable
    idx = np.asarray(many(state, jax.random.PRNGKey(3)).indices).ravel()
    assert np.mean(idx == 3) > 0.9 and idx.max() < 8


def test_wrap_around_overwrites_oldest(rb):
    replay, *_, many = rb
    ids = np.arange(90)  # 64 fit; items 64..89 overwrite slots 0..25
    state = fill(rb, list(ids), 1.0 + ids / 100.0, chunk=30)
    assert bool(state.is_full) and int(state.current_index) == 90 % CAPACITY
    assert int(replay.size(state)) == CAPACITY
    slot_ids = np.asarray(state.experience.action[0])
    expected_ids = np.where(np.arange(CAPACITY) < 26, np.arange(CAPACITY) + 64, np.arange(CAPACITY))
    np.testing.assert_array_equal(slot_ids, expected_ids)
    expected_priorities = (1.0 + expected_ids / 100.0) ** ALPHA
    np.testing.assert_allclose(replay.priorities(state), expected_priorities, rtol=1e-5)
    out = many(state, jax.random.PRNGKey(4))
    np.testing.assert_array_equal(out.transitions.action, expected_ids[np.asarray(out.indices)])
