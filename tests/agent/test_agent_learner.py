"""Learner maths against hand-computed numbers, using a Q-table in place of the network.

The fake ``apply_fn`` looks up ``params["q"][state]`` with the state id in ``tokens[:, 0]``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.agent.learner import (
    LearnerConfig,
    Transition,
    importance_weights,
    init_learner,
    learner_update,
    loss_fn,
    per_beta,
    td_errors,
)
from jaxnas.env.types import Observation

GAMMA = 0.9


def table_apply(params, obs):
    return params["q"][obs.tokens[:, 0]]


def obs_of(states, masks):
    n = len(states)
    return Observation(
        tokens=jnp.asarray(states, jnp.int32)[:, None],
        action_mask=jnp.asarray(masks, bool),
        features=jnp.zeros((n, 3), jnp.float32),
        visited=jnp.zeros_like(jnp.asarray(masks, bool)),
    )


ALL = [True, True, True]
NO_LAST = [True, True, False]

# States 0..2; 3 actions.
ONLINE = {"q": jnp.array([[0.5, 1.5, -1.0], [1.0, 2.0, 10.0], [0.0, 0.0, 4.0]])}
TARGET = {"q": jnp.array([[9.0, 9.0, 9.0], [5.0, 3.0, 100.0], [7.0, 1.0, -2.0]])}

# 0: 3-step return, next state 1 whose best online action (2) is invalid -> online picks 1,
#    target evaluates 3.0 (target's own favourite among valid actions would be 0 with 5.0).
# 1: truncated after m=1 step into state 2: online picks 2, target says -2.0.
# 2: true terminal into state 1: no bootstrap.
# 3: 1-step, small td (quadratic Huber branch).
R3 = 0.5 + GAMMA * 1.0 + GAMMA**2 * 2.0
BATCH = Transition(
    obs=obs_of([0, 0, 0, 0], [ALL] * 4),
    action=jnp.array([0, 1, 2, 0], jnp.int32),
    reward=jnp.array([R3, 2.0, 3.0, 0.2], jnp.float32),
    discount=jnp.array([GAMMA**3, GAMMA, 0.0, GAMMA], jnp.float32),
    next_obs=obs_of([1, 2, 1, 0], [NO_LAST, ALL, NO_LAST, ALL]),
)
# Transition 3: next state 0, all valid: online argmax is action 1, target gives 9.0.
EXPECTED_TD = np.array(
    [
        R3 + GAMMA**3 * 3.0 - 0.5,
        2.0 + GAMMA * -2.0 - 1.5,
        3.0 - (-1.0),
        0.2 + GAMMA * 9.0 - 0.5,
    ],
    np.float32,
)


def huber(x, d=1.0):
    return np.where(np.abs(x) <= d, 0.5 * x**2, d * (np.abs(x) - 0.5 * d))


def test_td_errors_hand_computed():
    td = td_errors(ONLINE, TARGET, table_apply, BATCH)
    np.testing.assert_allclose(td, EXPECTED_TD, rtol=1e-6)
    # Without masking, online would pick the invalid action 2 and the target would say 100.
    unmasked = BATCH._replace(next_obs=obs_of([1, 2, 1, 0], [ALL] * 4))
    np.testing.assert_allclose(
        td_errors(ONLINE, TARGET, table_apply, unmasked)[0], R3 + GAMMA**3 * 100.0 - 0.5, rtol=1e-6
    )


def test_loss_huber_weights_and_gradient():
    weights = jnp.array([1.0, 0.5, 0.25, 1.0])
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        ONLINE, TARGET, table_apply, BATCH, weights, 1.0
    )
    assert (np.abs(EXPECTED_TD) > 1).all()  # all on the linear branch, td[1] negative
    w = np.asarray(weights)
    np.testing.assert_allclose(loss, np.mean(w * huber(EXPECTED_TD)), rtol=1e-6)
    np.testing.assert_allclose(aux["td_errors"], EXPECTED_TD, rtol=1e-6)
    np.testing.assert_allclose(aux["q_mean"], np.mean([0.5, 1.5, -1.0, 0.5]), rtol=1e-6)
    # Only Q(s=0, taken action) gets gradient: d/dq of w * huber(target - q) / B; the
    # bootstrap target (online selector included) is held constant.
    expected = np.zeros((3, 3), np.float32)
    for a, td, wi in zip([0, 1, 2, 0], EXPECTED_TD, w):
        expected[0, a] += -wi * np.clip(td, -1, 1) / 4
    np.testing.assert_allclose(grads["q"], expected, rtol=1e-6, atol=1e-7)


def test_quadratic_huber_branch():
    small = BATCH._replace(reward=BATCH.reward.at[3].set(0.5 - GAMMA * 9.0 + 0.3))
    loss, aux = loss_fn(ONLINE, TARGET, table_apply, small, jnp.array([0.0, 0.0, 0.0, 1.0]), 1.0)
    np.testing.assert_allclose(aux["td_errors"][3], 0.3, rtol=1e-5)
    np.testing.assert_allclose(loss, 0.5 * 0.3**2 / 4, rtol=1e-4)


def test_importance_weights():
    p = jnp.array([0.5, 0.25, 0.0, 0.125])
    w = importance_weights(p, 4, 0.5)
    np.testing.assert_allclose(w, [0.5, 2**-0.5, 0.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(importance_weights(p, 4, 0.0), [1, 1, 0, 1])
    cfg = LearnerConfig(per_beta=0.4, per_beta_anneal_steps=100)
    np.testing.assert_allclose([per_beta(cfg, s) for s in (0, 50, 100, 200)], [0.4, 0.7, 1, 1])
    assert float(per_beta(LearnerConfig(per_beta=0.4), 10**6)) == pytest.approx(0.4)


def _one_transition():
    return jax.tree.map(lambda x: x[:1], BATCH)


def test_target_sync_every_k_steps():
    cfg = LearnerConfig(learning_rate=0.1, target_update_period=3)
    update = jax.jit(functools.partial(learner_update, config=cfg, apply_fn=table_apply))
    state = init_learner(ONLINE, cfg)
    batch, weights = _one_transition(), jnp.ones(1)
    last_synced = ONLINE["q"]
    for step in range(1, 8):
        td_before = td_errors(state.params, state.target_params, table_apply, batch)
        state, td, _ = update(state, batch, weights)
        np.testing.assert_allclose(td, td_before, rtol=1e-6)
        assert int(state.step) == step
        assert not np.array_equal(state.params["q"], last_synced)  # online keeps learning
        if step % 3 == 0:
            last_synced = state.params["q"]
        np.testing.assert_array_equal(state.target_params["q"], last_synced)


def test_gradient_clipping_applied():
    # One transition with td = 4.707 > delta: the gradient is -1 on Q(0, 0) (norm 1). With
    # adam_eps = 1, Adam's first step is -lr * g / (|g| + 1), so clipping to 0.01 moves the
    # entry by 0.01 / 1.01 instead of 1 / 2.
    batch, weights = _one_transition(), jnp.ones(1)
    for max_norm, expected_move in [(0.01, 0.01 / 1.01), (1e3, 0.5)]:
        cfg = LearnerConfig(learning_rate=1.0, adam_eps=1.0, max_grad_norm=max_norm)
        state = init_learner(ONLINE, cfg)
        state, _, metrics = learner_update(state, batch, weights, cfg, table_apply)
        np.testing.assert_allclose(metrics["grad_norm"], 1.0, rtol=1e-6)
        delta = np.asarray(state.params["q"] - ONLINE["q"])
        np.testing.assert_allclose(delta[0, 0], expected_move, rtol=1e-5)
        assert np.count_nonzero(delta) == 1
