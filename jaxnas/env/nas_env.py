"""The incremental-improvement NAS environment: pure functions, usable under jit and vmap.

The agent stands on one architecture; each step applies one action (change one edge / slot) and
moves to the neighbouring architecture, whose metric is looked up in the table. After ``horizon``
steps the episode is truncated (never terminated: ``discount`` stays 1.0), so learners bootstrap
through the time limit. An invalid action (masked in the observation) leaves the architecture
unchanged and still uses a step.
"""

from __future__ import annotations

from typing import Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxnas.data.table import BenchmarkTable
from jaxnas.env.normalise import NORMALISATIONS, normalise
from jaxnas.env.types import NUM_FEATURES, Observation, StepInfo, StepType, TimeStep
from jaxnas.errors import ConfigError
from jaxnas.spaces.space import SearchSpace, make_space

REWARD_MODES = ("value", "improvement", "delta")


@struct.dataclass
class EnvState:
    key: chex.PRNGKey  # drives the next automatic reset
    arch: chex.Array  # int32, current architecture
    t: chex.Array  # int32, steps taken in this episode
    best_arch: chex.Array  # int32, best architecture (by validation metric) seen in the episode
    history: chex.Array  # int32 [horizon + 1], architectures visited, -1 padded
    distinct: chex.Array  # int32, distinct architectures visited (the search budget spent)


@struct.dataclass
class NASEnv:
    space: SearchSpace
    score: chex.Array  # float32 [N], normalised validation metric
    valid: chex.Array  # float32 [N], raw validation metric
    test: chex.Array  # float32 [N], raw test metric, NaN when the data has none
    horizon: int = struct.field(pytree_node=False)
    reward_mode: str = struct.field(pytree_node=False)
    normalisation: str = struct.field(pytree_node=False)
    start_arch: int = struct.field(pytree_node=False, default=-1)  # -1: uniformly random

    @property
    def num_actions(self) -> int:
        return self.space.num_actions

    @property
    def length(self) -> int:
        return self.space.length

    @property
    def has_test(self) -> bool:
        return bool(np.isfinite(np.asarray(self.test)).all())

    # -- core -------------------------------------------------------------------------------
    def observe(self, state: EnvState) -> Observation:
        features = jnp.stack(
            [
                self.score[state.arch],
                self.score[state.best_arch],
                state.t.astype(jnp.float32) / self.horizon,
            ]
        )
        neighbours = self.space.neighbours[state.arch]  # [A]
        visited = (neighbours[:, None] == state.history[None, :]).any(axis=1) & (neighbours >= 0)
        return Observation(
            tokens=self.space.encodings[state.arch],
            action_mask=neighbours >= 0,
            features=features,
            visited=visited,
        )

    def _info(self, state: EnvState) -> StepInfo:
        return StepInfo(
            arch=state.arch,
            valid_metric=self.valid[state.arch],
            test_metric=self.test[state.arch],
            best_valid=self.valid[state.best_arch],
            best_arch=state.best_arch,
            distinct_queries=state.distinct,
            truncated=state.t >= self.horizon,
        )

    def reset(self, key: chex.PRNGKey) -> tuple[EnvState, TimeStep]:
        key, start_key = jax.random.split(key)
        if self.start_arch >= 0:
            arch = jnp.asarray(self.start_arch, jnp.int32)
        else:
            arch = jax.random.randint(start_key, (), 0, self.space.num_archs, jnp.int32)
        history = jnp.full((self.horizon + 1,), -1, jnp.int32).at[0].set(arch)
        state = EnvState(
            key=key,
            arch=arch,
            t=jnp.zeros((), jnp.int32),
            best_arch=arch,
            history=history,
            distinct=jnp.ones((), jnp.int32),
        )
        timestep = TimeStep(
            step_type=jnp.asarray(StepType.FIRST, jnp.int32),
            reward=jnp.zeros((), jnp.float32),
            discount=jnp.ones((), jnp.float32),
            observation=self.observe(state),
            info=self._info(state),
        )
        return state, timestep

    def step(self, state: EnvState, action: chex.Array) -> tuple[EnvState, TimeStep]:
        chex.assert_rank(action, 0)
        new_arch = self.space.step(state.arch, action)
        old_score = self.score[state.arch]
        best_before = self.score[state.best_arch]
        new_score = self.score[new_arch]
        t = state.t + 1
        is_new = ~jnp.any(state.history == new_arch)
        best_arch = jnp.where(new_score > best_before, new_arch, state.best_arch)
        state = state.replace(
            arch=new_arch,
            t=t,
            best_arch=best_arch,
            history=state.history.at[jnp.minimum(t, self.horizon)].set(new_arch),
            distinct=state.distinct + is_new.astype(jnp.int32),
        )
        if self.reward_mode == "value":
            reward = new_score
        elif self.reward_mode == "improvement":
            reward = jnp.maximum(new_score - best_before, 0.0)
        else:  # delta
            reward = new_score - old_score
        last = t >= self.horizon
        timestep = TimeStep(
            step_type=jnp.where(last, StepType.LAST, StepType.MID).astype(jnp.int32),
            reward=reward.astype(jnp.float32),
            discount=jnp.ones((), jnp.float32),
            observation=self.observe(state),
            info=self._info(state),
        )
        return state, timestep

    def step_autoreset(self, state: EnvState, action: chex.Array) -> tuple[EnvState, TimeStep]:
        """``step``, then a fresh episode when the horizon is reached.

        The returned timestep is the true one (its observation is the final observation on the
        last step, needed to bootstrap); the returned state is already the next episode's, so
        actors act on ``observe(state)``.
        """
        state, timestep = self.step(state, action)
        reset_state, _ = self.reset(state.key)
        state = jax.tree.map(
            lambda fresh, cur: jnp.where(timestep.last(), fresh, cur), reset_state, state
        )
        return state, timestep


def make_env(
    table: BenchmarkTable,
    task: str,
    *,
    horizon: int = 50,
    reward_mode: str = "improvement",
    normalisation: str = "minmax",
    start_arch: Optional[int] = None,
    space: Optional[SearchSpace] = None,
) -> NASEnv:
    """The environment for ``task`` of ``table``.

    The task is not a static field: environments of different tasks of one space share every
    compiled function, so switching from the source to the target task recompiles nothing.
    """
    if reward_mode not in REWARD_MODES:
        raise ConfigError(f"unknown reward mode {reward_mode!r}; choose one of {', '.join(REWARD_MODES)}")
    if normalisation not in NORMALISATIONS:
        raise ConfigError(
            f"unknown normalisation {normalisation!r}; choose one of {', '.join(NORMALISATIONS)}"
        )
    if horizon < 1:
        raise ConfigError(f"horizon must be at least 1, got {horizon}")
    valid = np.asarray(table.valid_of(task))
    test = table.test_of(task)
    test = np.full_like(valid, np.nan) if test is None else np.asarray(test)
    space = space if space is not None else make_space(table)
    if start_arch is not None and not 0 <= start_arch < space.num_archs:
        raise ConfigError(f"start architecture index {start_arch} outside 0..{space.num_archs - 1}")
    return NASEnv(
        space=space,
        score=jnp.asarray(normalise(valid, normalisation)),
        valid=jnp.asarray(valid, jnp.float32),
        test=jnp.asarray(test, jnp.float32),
        horizon=int(horizon),
        reward_mode=reward_mode,
        normalisation=normalisation,
        start_arch=-1 if start_arch is None else int(start_arch),
    )


def random_valid_action(key: chex.PRNGKey, observation: Observation) -> chex.Array:
    """A uniformly random valid action (works on one observation; vmap for batches)."""
    logits = jnp.where(observation.action_mask, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits).astype(jnp.int32)
