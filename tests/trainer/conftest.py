"""One tiny agent shared by the trainer tests, so each compiled function compiles once."""

import jax
import pytest

from jaxnas.env import make_env
from jaxnas.experiments.presets import get_preset
from jaxnas.trainer.agent import make_agent


@pytest.fixture(scope="session")
def tiny_setup(micro_table):
    cfg = get_preset("tiny").config
    env = make_env(micro_table, "class_object", horizon=cfg.horizon)
    return cfg, env, make_agent(cfg, env)


@pytest.fixture(scope="session")
def target_env(micro_table, tiny_setup):
    cfg, env, _ = tiny_setup
    return make_env(micro_table, "room_layout", horizon=cfg.horizon, space=env.space)
