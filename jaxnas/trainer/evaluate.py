"""Greedy evaluation of a Q-network from many random starts, vmapped, in one jit."""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.agent.network import greedy_action
from jaxnas.env.nas_env import NASEnv


class EpisodeOutcome(NamedTuple):
    best_arch: chex.Array  # int32 [E], best architecture (by validation metric) found
    best_valid: chex.Array  # float32 [E], its raw validation metric
    best_test: chex.Array  # float32 [E], its raw test metric (NaN without test data)
    distinct_queries: chex.Array  # int32 [E]


@functools.partial(jax.jit, static_argnames=("apply_fn", "num_episodes", "epsilon"))
def run_episodes(
    apply_fn, params, env: NASEnv, key: chex.PRNGKey, num_episodes: int, epsilon: float = 0.0
) -> EpisodeOutcome:
    """One episode of ``env.horizon`` steps from each of ``num_episodes`` random starts.

    ``epsilon = 0`` is the greedy policy; ``epsilon = 1`` the uniformly random valid policy
    (``params`` are then unused).
    """
    reset_key, act_key = jax.random.split(key)
    state, ts = jax.vmap(env.reset)(jax.random.split(reset_key, num_episodes))

    def body(carry, k):
        state, obs = carry
        explore_key, random_key = jax.random.split(k)
        if epsilon < 1.0:
            action = greedy_action(apply_fn(params, obs), obs.action_mask)
        else:
            action = jnp.zeros((num_episodes,), jnp.int32)
        if epsilon > 0.0:
            scores = jax.random.uniform(random_key, obs.action_mask.shape)
            random_action = greedy_action(scores, obs.action_mask)
            explore = jax.random.uniform(explore_key, (num_episodes,)) < epsilon
            action = jnp.where(explore, random_action, action)
        state, ts = jax.vmap(env.step)(state, action)
        return (state, ts.observation), None

    (state, _), _ = jax.lax.scan(
        body, (state, ts.observation), jax.random.split(act_key, env.horizon)
    )
    return EpisodeOutcome(
        best_arch=state.best_arch,
        best_valid=env.valid[state.best_arch],
        best_test=env.test[state.best_arch],
        distinct_queries=state.distinct,
    )


def summarise(outcome: EpisodeOutcome, env: NASEnv) -> dict:
    """Headline numbers of an evaluation, as plain Python floats.

    normalised_score: mean of (best found - worst) / (global best - worst), raw validation
    metric, so scores are comparable across normalisations and tasks.
    """
    valid = np.asarray(env.valid, np.float64)
    best, worst = valid.max(), valid.min()
    found = np.asarray(outcome.best_valid, np.float64)
    out = {
        "best_valid_mean": float(found.mean()),
        "best_valid_std": float(found.std()),
        "normalised_score": float(((found - worst) / (best - worst)).mean()) if best > worst else 0.0,
        "regret": float(best - found.mean()),
        "optimum_rate": float((found >= best).mean()),
        "distinct_queries_mean": float(np.asarray(outcome.distinct_queries).mean()),
        "episodes": int(found.shape[0]),
    }
    test = np.asarray(outcome.best_test, np.float64)
    if np.isfinite(test).all():
        out["best_test_mean"] = float(test.mean())
    return out


def evaluate(
    apply_fn, params, env: NASEnv, key: chex.PRNGKey, num_episodes: int, epsilon: float = 0.0
) -> dict:
    return summarise(run_episodes(apply_fn, params, env, key, num_episodes, epsilon), env)


def global_best(env: NASEnv) -> Optional[float]:
    return float(np.asarray(env.valid).max())
