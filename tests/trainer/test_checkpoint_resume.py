"""Checkpoint round trip, and a resumed phase ending exactly like an uninterrupted one."""

import jax
import numpy as np
import pytest

from jaxnas.trainer.checkpoint import Checkpointer, trees_equal
from jaxnas.trainer.loop import init_train_state, train_chunk
from jaxnas.trainer.phase import Interrupted, run_phase


def test_round_trip_restores_every_leaf(tiny_setup, tmp_path):
    cfg, env, agent = tiny_setup
    state = init_train_state(agent, env, jax.random.PRNGKey(0))
    state, _ = train_chunk(agent, env, state, 8)
    ckpt = Checkpointer(tmp_path / "ck")
    ckpt.save(1, state, {"note": "x"})
    ckpt.close()
    template = init_train_state(agent, env, jax.random.PRNGKey(1))
    assert not trees_equal(template, state)
    restored, meta = Checkpointer(tmp_path / "ck").restore(template)
    assert meta == {"note": "x"}
    assert trees_equal(restored, state)  # params, target, optimiser, replay, actors, key, counters


def test_interrupted_then_resumed_equals_uninterrupted(tiny_setup, tmp_path):
    cfg, env, agent = tiny_setup
    steps = 3 * cfg.eval_every
    eval_key = jax.random.PRNGKey(7)

    def fresh():
        return init_train_state(agent, env, jax.random.PRNGKey(3))

    full = run_phase(agent, env, fresh(), steps, eval_key, progress=False)

    calls = {"n": 0}

    def stop_after_first_chunk():
        calls["n"] += 1
        return calls["n"] == 1

    ckpt_dir = tmp_path / "phase"
    with pytest.raises(Interrupted):
        run_phase(agent, env, fresh(), steps, eval_key, checkpoint_dir=ckpt_dir,
                  should_stop=stop_after_first_chunk, progress=False)
    resumed = run_phase(agent, env, fresh(), steps, eval_key, checkpoint_dir=ckpt_dir,
                        resume=True, progress=False)
    assert resumed.curve_env_steps == full.curve_env_steps
    assert resumed.curve_scores == full.curve_scores
    assert resumed.evaluations == full.evaluations
    assert trees_equal(resumed.state.learner, full.state.learner)
    assert trees_equal(resumed.state.replay, full.state.replay)
    assert int(resumed.state.env_steps) == int(full.state.env_steps)
