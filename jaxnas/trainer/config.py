"""Training configuration: one frozen dataclass, serialisable to JSON."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from jaxnas.agent.learner import LearnerConfig
from jaxnas.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes one Ape-X training run (the task and budget are not part of it).

    The defaults of reward mode, normalisation, horizon, network size and replay ratio come from
    ``experiments/defaults_study.py`` (README, "Defaults by evidence").

    One training *iteration* is: every actor takes ``act_steps`` environment steps, the
    resulting ``act_steps * num_envs`` n-step transitions go into replay, and the learner makes
    ``updates_per_iteration`` updates of ``batch_size`` samples. The replay ratio (learner
    samples per environment step) is therefore
    ``updates_per_iteration * batch_size / (act_steps * num_envs)``.
    """

    # Environment
    horizon: int = 20
    reward_mode: str = "value"
    normalisation: str = "rank"
    # Actors
    num_envs: int = 32
    act_steps: int = 1
    n_step: int = 3
    epsilon_base: float = 0.4
    epsilon_alpha: float = 7.0
    # Network
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_dim: int = 128
    # Learner
    gamma: float = 0.9
    learning_rate: float = 3e-4
    target_update_period: int = 250
    batch_size: int = 128
    updates_per_iteration: int = 2
    per_alpha: float = 0.6
    per_beta: float = 0.4
    per_beta_anneal_steps: int = 0
    priority_eps: float = 1e-3
    # Replay
    replay_capacity: int = 100_000
    min_replay: int = 1_000
    # Evaluation
    eval_episodes: int = 1024
    eval_every: int = 10_000  # env steps between evaluations on the learning curve

    @property
    def steps_per_iteration(self) -> int:
        return self.act_steps * self.num_envs

    @property
    def replay_ratio(self) -> float:
        return self.updates_per_iteration * self.batch_size / self.steps_per_iteration

    def learner_config(self) -> LearnerConfig:
        return LearnerConfig(
            gamma=self.gamma,
            learning_rate=self.learning_rate,
            target_update_period=self.target_update_period,
            per_alpha=self.per_alpha,
            per_beta=self.per_beta,
            per_beta_anneal_steps=self.per_beta_anneal_steps,
        )

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; known: {sorted(names)}")
        return cls(**d)

    def validate(self) -> "TrainConfig":
        positive = [
            "horizon", "num_envs", "act_steps", "n_step", "d_model", "num_layers", "num_heads",
            "mlp_dim", "batch_size", "replay_capacity", "eval_episodes", "eval_every",
            "target_update_period",
        ]
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.updates_per_iteration < 0:
            raise ConfigError("updates_per_iteration must be >= 0")
        if self.d_model % self.num_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be a multiple of num_heads ({self.num_heads})")
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.batch_size > self.replay_capacity or self.min_replay > self.replay_capacity:
            raise ConfigError("batch_size and min_replay must not exceed replay_capacity")
        if self.steps_per_iteration > self.replay_capacity:
            raise ConfigError("act_steps * num_envs must not exceed replay_capacity")
        return self
