"""Ape-X per-actor exploration rates and masked epsilon-greedy action selection."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.agent.network import greedy_action
from jaxnas.errors import ConfigError


def apex_epsilons(num_actors: int, base: float = 0.4, alpha: float = 7.0) -> chex.Array:
    """float32 [N] with eps_i = base ** (1 + alpha * i / (N - 1)); [base] when N = 1."""
    if num_actors < 1:
        raise ConfigError(f"num_actors must be at least 1, got {num_actors}")
    # Computed in float64 on the host so eps_{N-1} is base**(1+alpha) to float32 precision.
    frac = np.arange(num_actors) / max(num_actors - 1, 1)
    return jnp.asarray(base ** (1.0 + alpha * frac), dtype=jnp.float32)


def epsilon_greedy(
    key: chex.PRNGKey, q: chex.Array, mask: chex.Array, epsilons: chex.Array
) -> chex.Array:
    """Actions int32 [B]: with probability eps_b uniform over row b's valid actions, else its
    masked argmax. ``q`` float [B, A], ``mask`` bool [B, A], ``epsilons`` float [B] or scalar."""
    chex.assert_rank([q, mask], 2)
    chex.assert_equal_shape([q, mask])
    batch = q.shape[0]
    epsilons = jnp.broadcast_to(epsilons, (batch,))
    explore_key, action_key = jax.random.split(key)
    # The argmax of i.i.d. uniform scores over the valid actions is a uniform valid action.
    scores = jax.random.uniform(action_key, q.shape)
    random_action = greedy_action(scores, mask)
    explore = jax.random.uniform(explore_key, (batch,)) < epsilons
    return jnp.where(explore, random_action, greedy_action(q, mask))
