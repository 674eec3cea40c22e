"""The agent's static parts (network, optimiser, replay, epsilons) built from a TrainConfig."""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp

from jaxnas.agent.epsilon import apex_epsilons
from jaxnas.agent.learner import LearnerConfig, Transition
from jaxnas.agent.network import NetworkConfig, QNetwork
from jaxnas.agent.replay import Replay, make_replay
from jaxnas.env.nas_env import NASEnv
from jaxnas.env.types import zeros_observation
from jaxnas.trainer.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class Agent:
    """Static, hashable description of the learning system for one search space."""

    config: TrainConfig
    network: QNetwork
    replay: Replay
    learner: LearnerConfig
    epsilons: tuple[float, ...]

    @property
    def apply_fn(self) -> Callable:
        return self.network.apply

    def init_params(self, key):
        cfg = self.network.config
        obs = jax.tree.map(lambda x: x[None], zeros_observation(cfg.length, cfg.num_actions))
        return self.network.init(key, obs)

    def example_transition(self) -> Transition:
        cfg = self.network.config
        obs = zeros_observation(cfg.length, cfg.num_actions)
        scalar = jnp.zeros((), jnp.float32)
        return Transition(obs=obs, action=jnp.zeros((), jnp.int32), reward=scalar, discount=scalar, next_obs=obs)

    def epsilon_array(self):
        return jnp.asarray(self.epsilons, jnp.float32)


def make_agent(config: TrainConfig, env: NASEnv) -> Agent:
    """The agent for ``env``'s search space. Cached: equal configs give the same object, so jitted
    functions taking the agent as a static argument compile once."""
    return _make_agent(config, env.space.num_values, env.space.length)


@functools.lru_cache(maxsize=64)
def _make_agent(config: TrainConfig, num_values: int, length: int) -> Agent:
    config.validate()
    network = QNetwork(
        NetworkConfig(
            num_values=num_values,
            length=length,
            d_model=config.d_model,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            mlp_dim=config.mlp_dim,
        )
    )
    replay = make_replay(
        config.replay_capacity,
        config.batch_size,
        min_length=max(config.min_replay, config.batch_size),
        alpha=config.per_alpha,
    )
    eps = apex_epsilons(config.num_envs, config.epsilon_base, config.epsilon_alpha)
    return Agent(
        config=config,
        network=network,
        replay=replay,
        learner=config.learner_config(),
        epsilons=tuple(float(e) for e in eps),
    )
