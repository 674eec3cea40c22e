"""The on-device Ape-X loop: act, add to replay, learn, update priorities, all in one jit.

``train_chunk`` runs ``num_iterations`` iterations with ``lax.scan``; Python only runs between
chunks (logging, evaluation, checkpoints). The environment is a pytree argument, so the same
compiled chunk serves every task of a search space.
"""

from __future__ import annotations

import functools
from typing import Optional

import chex
import jax
import jax.numpy as jnp
from flax import struct

from jaxnas.agent.learner import LearnerState, importance_weights, init_learner, per_beta, td_errors
from jaxnas.agent.learner import learner_update
from jaxnas.env.nas_env import NASEnv
from jaxnas.trainer import actors as actors_lib
from jaxnas.trainer.agent import Agent


@struct.dataclass
class TrainState:
    learner: LearnerState
    replay: object  # flashbax prioritised buffer state
    actors: actors_lib.ActorState
    key: chex.PRNGKey
    env_steps: chex.Array  # int32, environment steps taken by all actors together
    iteration: chex.Array  # int32


class ChunkMetrics(struct.PyTreeNode):
    loss: chex.Array  # [num_iterations]
    q_mean: chex.Array
    td_abs_mean: chex.Array
    episode_best: chex.Array  # mean normalised best score of episodes that ended, NaN if none
    learning: chex.Array  # bool, whether the learner updated in this iteration


def init_train_state(agent: Agent, env: NASEnv, key: chex.PRNGKey) -> TrainState:
    """A fresh agent: new parameters, empty replay, actors at the start of their episodes."""
    param_key, actor_key, key = jax.random.split(key, 3)
    params = agent.init_params(param_key)
    return reset_for_task(agent, env, init_learner(params, agent.learner), key, actor_key)


def reset_for_task(
    agent: Agent, env: NASEnv, learner: LearnerState, key: chex.PRNGKey, actor_key=None
) -> TrainState:
    """Keeps the learner's parameters and optimiser state; starts a new replay buffer, new actor
    episodes and new counters on ``env`` (the transfer regimes start here)."""
    if actor_key is None:
        key, actor_key = jax.random.split(key)
    cfg = agent.config
    actors = actors_lib.init_actors(
        env, agent.apply_fn, learner.params, agent.epsilon_array(), actor_key, cfg.n_step
    )
    warmup_steps = (cfg.n_step - 1) * cfg.num_envs
    return TrainState(
        learner=learner,
        replay=agent.replay.init(agent.example_transition()),
        actors=actors,
        key=key,
        env_steps=jnp.asarray(warmup_steps, jnp.int32),
        iteration=jnp.zeros((), jnp.int32),
    )


def _learn(agent: Agent, state: TrainState, key, axis_name: Optional[str]):
    """``updates_per_iteration`` learner updates, each followed by a priority update."""
    replay = agent.replay

    def one_update(carry, k):
        learner, buffer = carry
        sample = replay.sample(buffer, k)
        beta = per_beta(agent.learner, learner.step)
        weights = importance_weights(sample.probabilities, replay.size(buffer), beta)
        learner, td, metrics = learner_update(
            learner, sample.transitions, weights, agent.learner, agent.apply_fn, axis_name=axis_name
        )
        buffer = replay.update_priorities(buffer, sample.indices, jnp.abs(td) + agent.config.priority_eps)
        return (learner, buffer), metrics

    keys = jax.random.split(key, agent.config.updates_per_iteration)
    (learner, buffer), metrics = jax.lax.scan(one_update, (state.learner, state.replay), keys)
    return learner, buffer, jax.tree.map(jnp.mean, metrics)


def train_iteration(agent: Agent, env: NASEnv, state: TrainState, axis_name: Optional[str] = None):
    cfg = agent.config
    key, act_key, learn_key = jax.random.split(state.key, 3)
    actors, transitions, records = actors_lib.act(
        env,
        agent.apply_fn,
        state.learner.params,
        agent.epsilon_array(),
        state.actors,
        act_key,
        cfg.act_steps,
        cfg.n_step,
        cfg.gamma,
    )
    # Ape-X: actors prioritise their own transitions by their TD error.
    td = td_errors(state.learner.params, state.learner.target_params, agent.apply_fn, transitions)
    buffer = agent.replay.add(state.replay, transitions, jnp.abs(td) + cfg.priority_eps)
    state = state.replace(replay=buffer, actors=actors, key=key)

    ready = agent.replay.can_sample(buffer)
    if axis_name is not None:  # every device must take the same branch of the gradient pmean
        ready = jax.lax.pmin(ready.astype(jnp.int32), axis_name).astype(bool)
    zero = jnp.zeros((), jnp.float32)
    no_metrics = {"loss": zero, "q_mean": zero, "td_abs_mean": zero, "grad_norm": zero}
    learner, buffer, metrics = jax.lax.cond(
        ready,
        lambda s: _learn(agent, s, learn_key, axis_name),
        lambda s: (s.learner, s.replay, no_metrics),
        state,
    )
    ended = records.last
    # features[1] of the final observation is the episode's best normalised score.
    episode_best = jnp.where(ended, records.next_obs.features[..., 1], 0.0).sum() / jnp.maximum(ended.sum(), 1)
    episode_best = jnp.where(ended.any(), episode_best, jnp.nan)
    state = state.replace(
        learner=learner,
        replay=buffer,
        env_steps=state.env_steps + cfg.steps_per_iteration,
        iteration=state.iteration + 1,
    )
    return state, ChunkMetrics(
        loss=metrics["loss"],
        q_mean=metrics["q_mean"],
        td_abs_mean=metrics["td_abs_mean"],
        episode_best=episode_best,
        learning=ready,
    )


@functools.partial(jax.jit, static_argnames=("agent", "num_iterations"), donate_argnames=("state",))
def train_chunk(agent: Agent, env: NASEnv, state: TrainState, num_iterations: int):
    """``num_iterations`` training iterations in one compiled call."""
    return jax.lax.scan(
        lambda s, _: train_iteration(agent, env, s), state, None, length=num_iterations
    )
