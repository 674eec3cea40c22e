"""Vectorised Ape-X actors: act with per-actor epsilons and assemble n-step transitions.

Each actor keeps the last ``n - 1`` steps it took (``pending``). A batch of K new steps plus the
pending ones is enough to complete the n-step transitions that *start* at the first K of them;
the newest ``n - 1`` steps become the next pending window. Every call therefore emits exactly
``K * num_envs`` transitions, with fixed shapes. A transition stops summing rewards at the end
of its episode and bootstraps from that episode's final observation with discount gamma^m
(time-limit truncation), or 0 at a true terminal.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp

from jaxnas.agent.epsilon import epsilon_greedy
from jaxnas.agent.learner import Transition
from jaxnas.env.nas_env import EnvState, NASEnv
from jaxnas.env.types import Observation


class StepRecord(NamedTuple):
    """One environment step of one actor (leading axes [time, env] when stacked)."""

    obs: Observation
    action: chex.Array
    reward: chex.Array
    last: chex.Array  # the episode ended with this step
    terminal: chex.Array  # ... at a true terminal state (never in the NAS env)
    next_obs: Observation  # the true next observation (the final one on the last step)


class ActorState(NamedTuple):
    env_state: EnvState  # [B]
    pending: StepRecord  # [n - 1, B]


def _act_step(env: NASEnv, apply_fn: Callable, params, epsilons, env_state, key):
    obs = jax.vmap(env.observe)(env_state)
    q = apply_fn(params, obs)
    action = epsilon_greedy(key, q, obs.action_mask, epsilons)
    env_state, ts = jax.vmap(env.step_autoreset)(env_state, action)
    record = StepRecord(
        obs=obs,
        action=action,
        reward=ts.reward,
        last=ts.last(),
        terminal=ts.terminated(),
        next_obs=ts.observation,
    )
    return env_state, record


def rollout(env: NASEnv, apply_fn, params, epsilons, env_state, key, num_steps: int):
    """``num_steps`` vectorised steps -> (env_state, StepRecord [num_steps, B])."""

    def body(state, k):
        return _act_step(env, apply_fn, params, epsilons, state, k)

    return jax.lax.scan(body, env_state, jax.random.split(key, num_steps))


def init_actors(env: NASEnv, apply_fn, params, epsilons, key, n_step: int) -> ActorState:
    """Fresh episodes for every actor, then ``n - 1`` warm-up steps to fill the pending window."""
    reset_key, warm_key = jax.random.split(key)
    env_state, _ = jax.vmap(env.reset)(jax.random.split(reset_key, epsilons.shape[0]))
    env_state, pending = rollout(env, apply_fn, params, epsilons, env_state, warm_key, n_step - 1)
    return ActorState(env_state=env_state, pending=pending)


def nstep_transitions(records: StepRecord, n_step: int, gamma: float, num_starts: int) -> Transition:
    """n-step transitions starting at the first ``num_starts`` steps of ``records``.

    ``records`` is time-major [num_starts + n - 1, B]. Returns a Transition [num_starts, B].
    """
    chex.assert_axis_dimension(records.reward, 0, num_starts + n_step - 1)

    def window(x, k):
        return jax.lax.slice_in_dim(x, k, k + num_starts, axis=0)

    first = jax.tree.map(lambda x: window(x, 0), records)
    ret = jnp.zeros_like(first.reward)
    alive = jnp.ones_like(first.last)
    discount = jnp.ones_like(first.reward)
    next_obs = first.next_obs
    for k in range(n_step):
        step = jax.tree.map(lambda x, k=k: window(x, k), records)
        ret = ret + jnp.where(alive, (gamma**k) * step.reward, 0.0)
        bootstrap = jnp.where(step.terminal, 0.0, gamma ** (k + 1))
        discount = jnp.where(alive, bootstrap, discount)
        next_obs = jax.tree.map(
            lambda new, old: jnp.where(_expand(alive, new), new, old), step.next_obs, next_obs
        )
        alive = alive & ~step.last
    return Transition(
        obs=first.obs,
        action=first.action,
        reward=ret.astype(jnp.float32),
        discount=discount.astype(jnp.float32),
        next_obs=next_obs,
    )


def _expand(mask, like):
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def act(
    env: NASEnv,
    apply_fn,
    params,
    epsilons: chex.Array,
    actors: ActorState,
    key: chex.PRNGKey,
    num_steps: int,
    n_step: int,
    gamma: float,
):
    """Runs every actor ``num_steps`` steps. Returns (actors, transitions [num_steps * B],
    StepRecord [num_steps, B] of the new steps, for episode statistics)."""
    env_state, records = rollout(env, apply_fn, params, epsilons, actors.env_state, key, num_steps)
    combined = jax.tree.map(lambda p, r: jnp.concatenate([p, r], axis=0), actors.pending, records)
    transitions = nstep_transitions(combined, n_step, gamma, num_steps)
    transitions = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), transitions)
    pending = jax.tree.map(lambda x: x[num_steps:], combined)
    return ActorState(env_state=env_state, pending=pending), transitions, records
