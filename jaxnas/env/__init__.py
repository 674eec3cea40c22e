"""A jittable TransNAS-Bench-101 search environment in the style of dm_env / Jumanji."""

from jaxnas.env.nas_env import REWARD_MODES, EnvState, NASEnv, make_env, random_valid_action
from jaxnas.env.normalise import NORMALISATIONS, normalise
from jaxnas.env.types import NUM_FEATURES, Observation, StepInfo, StepType, TimeStep

__all__ = [
    "EnvState",
    "NASEnv",
    "NORMALISATIONS",
    "NUM_FEATURES",
    "Observation",
    "REWARD_MODES",
    "StepInfo",
    "StepType",
    "TimeStep",
    "make_env",
    "normalise",
    "random_valid_action",
]
