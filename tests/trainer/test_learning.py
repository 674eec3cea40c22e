"""A short training run on the real data beats the epsilon = 1 policy with the same horizon."""

import jax

from jaxnas.env import make_env
from jaxnas.experiments.presets import get_preset
from jaxnas.trainer.agent import make_agent
from jaxnas.trainer.evaluate import evaluate
from jaxnas.trainer.loop import init_train_state
from jaxnas.trainer.phase import run_phase


def test_trained_agent_beats_random_walk(micro_table):
    cfg = get_preset("quick").config.replace(eval_every=10_000, eval_episodes=1024)
    env = make_env(micro_table, "class_object", horizon=cfg.horizon, reward_mode=cfg.reward_mode)
    agent = make_agent(cfg, env)
    eval_key = jax.random.PRNGKey(5)
    result = run_phase(agent, env, init_train_state(agent, env, jax.random.PRNGKey(0)), 20_000,
                       eval_key, progress=False)
    walk = evaluate(agent.apply_fn, result.state.learner.params, env, eval_key, 1024, epsilon=1.0)
    untrained = result.evaluations[0]["normalised_score"]
    trained = result.final["normalised_score"]
    # 1024 episodes give a standard error of about 0.002 on these scores
    assert trained > walk["normalised_score"] + 0.01, (trained, walk)
    assert trained > untrained + 0.02, (trained, untrained)
