"""Named budgets and agent settings for the transfer experiment."""

from __future__ import annotations

import dataclasses

from jaxnas.errors import ConfigError
from jaxnas.trainer.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class Preset:
    pretrain_steps: int
    finetune_steps: int
    retrain_steps: int
    config: TrainConfig
    description: str


PRESETS = {
    # The paper's budgets: 10M pretraining, 1M fine-tuning, 10M retraining, 32 environments.
    "paper": Preset(
        pretrain_steps=10_000_000,
        finetune_steps=1_000_000,
        retrain_steps=10_000_000,
        config=TrainConfig(num_envs=32, eval_every=250_000, replay_capacity=1_000_000, min_replay=10_000),
        description="paper budgets (10M / 1M / 10M env steps, 32 envs); hours on a CPU, minutes on a GPU",
    ),
    # Small enough for a 2-core CPU in a few minutes, large enough to show learning.
    "quick": Preset(
        pretrain_steps=50_000,
        finetune_steps=10_000,
        retrain_steps=50_000,
        config=TrainConfig(num_envs=32, eval_every=5_000, eval_episodes=512, replay_capacity=100_000),
        description="a few minutes on a 2-core CPU",
    ),
    # For tests and notebooks in CI: seconds, not meaningful results.
    "tiny": Preset(
        pretrain_steps=4_096,
        finetune_steps=1_024,
        retrain_steps=4_096,
        config=TrainConfig(
            num_envs=8, act_steps=4, eval_every=1_024, eval_episodes=64, replay_capacity=8_192,
            min_replay=256, batch_size=64, d_model=32, num_layers=1, num_heads=2, mlp_dim=64,
            target_update_period=50,
        ),
        description="seconds; for tests and CI only",
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
