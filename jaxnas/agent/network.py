"""Dueling transformer Q-network over architecture tokens.

An action ``a = p * V + v`` sets position ``p`` to value ``v``. The encoder reads the ``L``
architecture tokens plus one context token built from the scalar features; the advantage of
``(p, v)`` is read off position ``p``'s output token and the state value off the context token,
so the same code serves any ``L`` and ``V``.
"""

from __future__ import annotations

import dataclasses

import chex
import flax.linen as nn
import jax.numpy as jnp

from jaxnas.env.types import NUM_FEATURES, Observation

# Finite stand-in for -inf: argmax never picks it, and arithmetic on it stays finite.
INVALID_Q = -1e9


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Sizes of the Q-network. ``num_values`` is V, ``length`` is L; A = L * V."""

    num_values: int
    length: int
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_dim: int = 128

    @property
    def num_actions(self) -> int:
        return self.length * self.num_values


class EncoderBlock(nn.Module):
    """Pre-LayerNorm transformer block: self-attention then MLP, both residual."""

    d_model: int
    num_heads: int
    mlp_dim: int

    @nn.compact
    def __call__(self, x: chex.Array) -> chex.Array:
        h = nn.LayerNorm()(x)
        attention = nn.MultiHeadDotProductAttention(self.num_heads, qkv_features=self.d_model)
        x = x + attention(h, h)
        h = nn.LayerNorm()(x)
        h = nn.Dense(self.d_model)(nn.gelu(nn.Dense(self.mlp_dim)(h)))
        return x + h


def masked_mean(x: chex.Array, mask: chex.Array) -> chex.Array:
    """Mean of ``x`` [B, A] over the True entries of ``mask`` per row -> [B, 1] (0 if none)."""
    count = jnp.maximum(mask.sum(axis=-1, keepdims=True), 1)
    return jnp.where(mask, x, 0.0).sum(axis=-1, keepdims=True) / count


class QNetwork(nn.Module):
    """Maps a batched ``Observation`` (tokens [B, L], action_mask [B, A], features [B, 3]) to
    Q-values float32 [B, A] with Q = V(s) + A(s, a) - mean_{valid a'} A(s, a')."""

    config: NetworkConfig

    @nn.compact
    def __call__(self, obs: Observation) -> chex.Array:
        cfg = self.config
        batch = obs.tokens.shape[0]
        chex.assert_shape(obs.tokens, (batch, cfg.length))
        chex.assert_shape(obs.action_mask, (batch, cfg.num_actions))
        chex.assert_shape(obs.features, (batch, NUM_FEATURES))
        chex.assert_shape(obs.visited, (batch, cfg.num_actions))
        chex.assert_type([obs.tokens, obs.action_mask, obs.features], [int, bool, float])

        tokens = nn.Embed(cfg.num_values, cfg.d_model, name="token_embed")(obs.tokens)
        # Which of position p's V possible changes lead back to an already visited architecture.
        visited = obs.visited.reshape(batch, cfg.length, cfg.num_values).astype(jnp.float32)
        tokens = tokens + nn.Dense(cfg.d_model, name="visited_proj")(visited)
        pos = self.param("pos_embed", nn.initializers.normal(0.02), (cfg.length, cfg.d_model))
        context_type = self.param("context_type", nn.initializers.normal(0.02), (cfg.d_model,))
        context = nn.Dense(cfg.d_model, name="feature_proj")(obs.features) + context_type
        x = jnp.concatenate([context[:, None, :], tokens + pos], axis=1)  # [B, 1 + L, D]

        for i in range(cfg.num_layers):
            x = EncoderBlock(cfg.d_model, cfg.num_heads, cfg.mlp_dim, name=f"block_{i}")(x)
        x = nn.LayerNorm(name="final_norm")(x)

        hidden = nn.relu(nn.Dense(cfg.mlp_dim, name="value_hidden")(x[:, 0]))
        value = nn.Dense(1, name="value_out")(hidden)  # [B, 1]
        # Row-major reshape of [L, V] matches a = p * V + v.
        adv = nn.Dense(cfg.num_values, name="adv_out")(x[:, 1:]).reshape(batch, cfg.num_actions)
        q = value + adv - masked_mean(adv, obs.action_mask)
        chex.assert_shape(q, (batch, cfg.num_actions))
        return q.astype(jnp.float32)


def masked_q(q: chex.Array, mask: chex.Array) -> chex.Array:
    """Q-values with invalid actions replaced by a large finite negative number."""
    chex.assert_equal_shape([q, mask])
    return jnp.where(mask, q, jnp.asarray(INVALID_Q, q.dtype))


def greedy_action(q: chex.Array, mask: chex.Array) -> chex.Array:
    """Argmax over valid actions, int32 with ``q``'s leading shape."""
    return jnp.argmax(masked_q(q, mask), axis=-1).astype(jnp.int32)
