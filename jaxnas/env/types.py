"""Data types shared by the environment and everything that consumes it.

The layout follows dm_env / Jumanji: a ``TimeStep`` carries the step type, reward, discount and
observation. Episodes in this environment never terminate, they are only truncated at the
horizon, so ``discount`` stays 1.0 on the last step and learners bootstrap through it.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax.numpy as jnp


class StepType:
    FIRST = 0
    MID = 1
    LAST = 2


class Observation(NamedTuple):
    """What the agent sees.

    tokens: int32 [L]; the architecture's encoding (one value per edge / slot).
    action_mask: bool [A]; True where the action leads to a different architecture in the space.
    features: float32 [NUM_FEATURES]; normalised metric of the current architecture, best
        normalised metric in this episode so far, fraction of the horizon used.
    visited: bool [A]; True where the action leads to an architecture already visited in this
        episode. Without it a deterministic policy cannot tell a new neighbour from the one it
        just left, and greedy search falls into two-step cycles.
    """

    tokens: chex.Array
    action_mask: chex.Array
    features: chex.Array
    visited: chex.Array


NUM_FEATURES = 3


class StepInfo(NamedTuple):
    """Per-step diagnostics reported next to the reward (all scalars per environment)."""

    arch: chex.Array  # int32, index of the architecture the agent stands on
    valid_metric: chex.Array  # float32, raw validation metric of `arch`
    test_metric: chex.Array  # float32, raw test metric of `arch` (NaN when the data has none)
    best_valid: chex.Array  # float32, best raw validation metric seen in this episode
    best_arch: chex.Array  # int32, architecture with `best_valid`
    distinct_queries: chex.Array  # int32, distinct architectures visited in this episode
    truncated: chex.Array  # bool, the episode ended because the horizon was reached


class TimeStep(NamedTuple):
    step_type: chex.Array  # int32
    reward: chex.Array  # float32
    discount: chex.Array  # float32; 0.0 only on a true terminal state (never in this env)
    observation: Observation
    info: StepInfo

    def first(self) -> chex.Array:
        return self.step_type == StepType.FIRST

    def mid(self) -> chex.Array:
        return self.step_type == StepType.MID

    def last(self) -> chex.Array:
        return self.step_type == StepType.LAST

    def terminated(self) -> chex.Array:
        return self.last() & (self.discount == 0.0)

    def truncated(self) -> chex.Array:
        return self.last() & (self.discount > 0.0)


def zeros_observation(length: int, num_actions: int) -> Observation:
    return Observation(
        tokens=jnp.zeros((length,), jnp.int32),
        action_mask=jnp.zeros((num_actions,), bool),
        features=jnp.zeros((NUM_FEATURES,), jnp.float32),
        visited=jnp.zeros((num_actions,), bool),
    )
