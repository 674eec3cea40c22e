"""n-step transition assembly against a plain-Python computation, incl. episode boundaries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.env.types import Observation
from jaxnas.trainer.actors import StepRecord, nstep_transitions


def _obs(ids):
    """Observations whose token 0 carries an id, so we can tell which one was bootstrapped."""
    ids = np.asarray(ids, np.int32)
    tokens = np.zeros(ids.shape + (6,), np.int32)
    tokens[..., 0] = ids
    return Observation(
        tokens=jnp.asarray(tokens),
        action_mask=jnp.ones(ids.shape + (24,), bool),
        features=jnp.zeros(ids.shape + (3,), jnp.float32),
        visited=jnp.zeros(ids.shape + (24,), bool),
    )


def _reference(rewards, last, terminal, n, gamma, start):
    ret, disc, boot = 0.0, None, None
    for k in range(n):
        j = start + k
        ret += gamma**k * rewards[j]
        disc = 0.0 if terminal[j] else gamma ** (k + 1)
        boot = j
        if last[j]:
            break
    return ret, disc, boot


@pytest.mark.parametrize("n", [1, 3, 5])
def test_nstep_matches_reference_across_episode_ends(n):
    rng = np.random.default_rng(n)
    steps, batch, gamma = 12, 3, 0.9
    total = steps + n - 1
    rewards = rng.normal(size=(total, batch)).astype(np.float32)
    last = rng.random((total, batch)) < 0.25
    terminal = last & (rng.random((total, batch)) < 0.3)
    obs_ids = np.arange(total)[:, None] * 10 + np.arange(batch)[None, :]
    records = StepRecord(
        obs=_obs(obs_ids),
        action=jnp.asarray(rng.integers(0, 24, (total, batch)), jnp.int32),
        reward=jnp.asarray(rewards),
        last=jnp.asarray(last),
        terminal=jnp.asarray(terminal),
        next_obs=_obs(obs_ids + 1000),  # next_obs of step j has id 1000 + id(j)
    )
    tr = jax.tree.map(np.asarray, nstep_transitions(records, n, gamma, steps))
    actions = np.asarray(records.action)
    assert tr.reward.shape == (steps, batch)
    for b in range(batch):
        for i in range(steps):
            ret, disc, boot = _reference(rewards[:, b], last[:, b], terminal[:, b], n, gamma, i)
            np.testing.assert_allclose(tr.reward[i, b], ret, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(tr.discount[i, b], disc, rtol=1e-6)
            assert int(tr.next_obs.tokens[i, b, 0]) == 1000 + obs_ids[boot, b]
            assert int(tr.obs.tokens[i, b, 0]) == obs_ids[i, b]
            assert tr.action[i, b] == actions[i, b]


def test_truncation_bootstraps_and_termination_does_not():
    # one env, n = 3; the episode is truncated after step 1 (last, not terminal)
    rewards = np.array([[1.0], [2.0], [4.0], [8.0]], np.float32)
    last = np.array([[False], [True], [False], [False]])
    records = StepRecord(
        obs=_obs(np.arange(4)[:, None]), action=jnp.zeros((4, 1), jnp.int32),
        reward=jnp.asarray(rewards), last=jnp.asarray(last), terminal=jnp.zeros((4, 1), bool),
        next_obs=_obs(np.arange(4)[:, None] + 100),
    )
    tr = nstep_transitions(records, 3, 0.5, 2)
    # from step 0: 1 + 0.5 * 2, stops at the time limit, bootstraps from the final obs (id 101)
    np.testing.assert_allclose(tr.reward[:, 0], [2.0, 2.0])
    np.testing.assert_allclose(tr.discount[:, 0], [0.25, 0.5])
    assert list(np.asarray(tr.next_obs.tokens[:, 0, 0])) == [101, 101]
    terminal = records._replace(terminal=jnp.asarray(last))
    tr = nstep_transitions(terminal, 3, 0.5, 2)
    np.testing.assert_allclose(tr.discount[:, 0], [0.0, 0.0])
