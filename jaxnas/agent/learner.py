"""Ape-X learner: prioritised double-Q learning on n-step transitions.

``apply_fn(params, obs) -> q [B, A]`` is any Q-function on batched observations (normally
``QNetwork(config).apply``). ``learner_update`` is pure; jit it with ``config`` and ``apply_fn``
bound (``functools.partial``) or static.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
import rlax
from flax import struct

from jaxnas.agent.network import masked_q
from jaxnas.env.types import Observation

ApplyFn = Callable[[Any, Observation], chex.Array]


class Transition(NamedTuple):
    """An n-step transition assembled by an actor (leading batch axis when batched).

    reward: float32, the discounted return sum_{k<m} gamma^k r_{t+k} over the m steps taken.
    discount: float32, gamma^m to bootstrap from ``next_obs``; 0.0 only at a true terminal
        (a truncated episode keeps gamma^m).
    """

    obs: Observation
    action: chex.Array
    reward: chex.Array
    discount: chex.Array
    next_obs: Observation


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """Learner hyper-parameters.

    gamma: per-step discount; actors use it to build n-step returns (the learner reads the
        bootstrap discount from each transition).
    target_update_period: K, learner steps between copies of the online into the target params.
    per_beta_anneal_steps: learner steps over which beta rises linearly from ``per_beta`` to 1;
        0 keeps beta fixed.
    """

    gamma: float = 0.99
    learning_rate: float = 1e-4
    adam_eps: float = 1.5e-4  # Rainbow / Ape-X value; larger than 1e-8 damps tiny-gradient steps
    max_grad_norm: float = 40.0
    huber_delta: float = 1.0
    target_update_period: int = 1000
    per_alpha: float = 0.6
    per_beta: float = 0.4
    per_beta_anneal_steps: int = 0


@struct.dataclass
class LearnerState:
    params: Any
    target_params: Any
    opt_state: optax.OptState
    step: chex.Array  # int32, learner updates done so far


def make_optimizer(config: LearnerConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(config.learning_rate, eps=config.adam_eps),
    )


def init_learner(params: Any, config: LearnerConfig) -> LearnerState:
    """Learner state whose target params start as a copy of ``params``."""
    return LearnerState(
        params=params,
        target_params=jax.tree.map(jnp.copy, params),
        opt_state=make_optimizer(config).init(params),
        step=jnp.zeros((), jnp.int32),
    )


def per_beta(config: LearnerConfig, step: chex.Numeric) -> chex.Array:
    """Importance-sampling exponent at learner ``step`` (linearly annealed to 1 if configured)."""
    if config.per_beta_anneal_steps <= 0:
        return jnp.asarray(config.per_beta, jnp.float32)
    frac = jnp.clip(step / config.per_beta_anneal_steps, 0.0, 1.0)
    return (config.per_beta + frac * (1.0 - config.per_beta)).astype(jnp.float32)


def importance_weights(
    probabilities: chex.Array, buffer_size: chex.Numeric, beta: chex.Numeric
) -> chex.Array:
    """w_i = (N * P_i)^-beta / max_j w_j. Items with P = 0 (never legitimately sampled) get
    weight 0 instead of inf, so they cannot dominate or poison the batch."""
    probabilities = jnp.asarray(probabilities, jnp.float32)
    positive = probabilities > 0
    safe = jnp.where(positive, probabilities * buffer_size, 1.0)
    weights = jnp.where(positive, safe ** (-beta), 0.0)
    return weights / jnp.maximum(weights.max(), 1e-12)


def _double_q(online_params, target_params, apply_fn: ApplyFn, transitions: Transition):
    """(td errors [B], Q_online(obs, action) [B])."""
    batch = transitions.action.shape[0]
    chex.assert_shape([transitions.action, transitions.reward, transitions.discount], (batch,))
    # One online pass over obs and next_obs together halves the number of network calls.
    both = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), transitions.obs, transitions.next_obs)
    q_both = apply_fn(online_params, both)
    q_tm1, q_t_online = q_both[:batch], q_both[batch:]
    q_t_target = apply_fn(target_params, transitions.next_obs)
    # Masking the selector keeps invalid actions out of the argmax; the target network only
    # evaluates the selected (valid) action.
    selector = jax.lax.stop_gradient(masked_q(q_t_online, transitions.next_obs.action_mask))
    td = jax.vmap(rlax.double_q_learning)(
        q_tm1,
        transitions.action,
        transitions.reward,
        transitions.discount,
        q_t_target,
        selector,
    )
    q_taken = jnp.take_along_axis(q_tm1, transitions.action[:, None], axis=1)[:, 0]
    return td, q_taken


def td_errors(online_params, target_params, apply_fn: ApplyFn, transitions: Transition):
    """Double-Q TD errors float32 [B]: r + discount * Q_target(s', argmax_valid Q_online(s'))
    - Q_online(s, a), with the target held constant (stop-gradient)."""
    return _double_q(online_params, target_params, apply_fn, transitions)[0]


def loss_fn(
    online_params,
    target_params,
    apply_fn: ApplyFn,
    transitions: Transition,
    weights: chex.Array,
    huber_delta: float = 1.0,
):
    """Batch mean of weights * huber(td). Returns (loss, aux) with aux keys
    ``td_errors`` [B], ``q_mean``, ``td_abs_mean``."""
    td, q_taken = _double_q(online_params, target_params, apply_fn, transitions)
    chex.assert_equal_shape([td, weights])
    loss = jnp.mean(weights * rlax.huber_loss(td, huber_delta))
    aux = {"td_errors": td, "q_mean": q_taken.mean(), "td_abs_mean": jnp.abs(td).mean()}
    return loss, aux


def learner_update(
    state: LearnerState,
    batch: Transition,
    weights: chex.Array,
    config: LearnerConfig,
    apply_fn: ApplyFn,
    axis_name: str | None = None,
):
    """One gradient step. Returns (new state, td errors [B] for priority updates, metrics).

    The target params become a copy of the online params whenever the new step count is a
    multiple of ``config.target_update_period``. With ``axis_name`` (inside ``shard_map`` /
    ``pmap``) the gradients are averaged over that axis, so every replica takes the same step.
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, aux), grads = grad_fn(
        state.params, state.target_params, apply_fn, batch, weights, config.huber_delta
    )
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        loss = jax.lax.pmean(loss, axis_name)
    updates, opt_state = make_optimizer(config).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    step = state.step + 1
    target_params = optax.periodic_update(
        params, state.target_params, step, config.target_update_period
    )
    metrics = {
        "loss": loss,
        "q_mean": aux["q_mean"],
        "td_abs_mean": aux["td_abs_mean"],
        "grad_norm": optax.tree.norm(grads),  # before clipping
    }
    new_state = LearnerState(
        params=params, target_params=target_params, opt_state=opt_state, step=step
    )
    return new_state, aux["td_errors"], metrics
