"""Data-parallel training with shard_map: one device reproduces the single-device loop bit for
bit; four (virtual CPU) devices stay in sync, learn, and run the transfer command line."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from jaxnas.errors import ConfigError
from jaxnas.trainer import distributed as dist
from jaxnas.trainer.checkpoint import trees_equal
from jaxnas.trainer.loop import init_train_state, reset_for_task, train_chunk


def test_one_device_equals_single_device_path_bitwise(tiny_setup):
    cfg, env, agent = tiny_setup
    key = jax.random.PRNGKey(11)
    mesh = dist.make_mesh(1)
    sharded = dist.init_sharded_state(agent, env, key, mesh)
    single = init_train_state(agent, env, key)
    assert trees_equal(dist.replica(sharded, 0), single)
    for _ in range(2):
        single, m_single = train_chunk(agent, env, single, 8)
        sharded, m_sharded = dist.train_chunk_sharded(agent, env, sharded, 8, mesh)
    # The compared window includes learner updates (gradients through the pmean path).
    assert bool(np.asarray(m_single.learning).sum() >= 4)
    assert trees_equal(dist.replica(sharded, 0), single)  # params, optimiser, replay, actors, keys
    np.testing.assert_array_equal(np.asarray(m_sharded.loss)[0], np.asarray(m_single.loss))
    assert dist.total_env_steps(sharded) == int(single.env_steps)


def test_shard_for_task_device_zero_is_reset_for_task(tiny_setup, target_env):
    cfg, env, agent = tiny_setup
    learner = init_train_state(agent, env, jax.random.PRNGKey(2)).learner
    key = jax.random.PRNGKey(5)
    sharded = dist.shard_for_task(agent, target_env, learner, key, dist.make_mesh(1))
    assert trees_equal(dist.replica(sharded, 0), reset_for_task(agent, target_env, learner, key))


def test_more_devices_than_visible_is_a_config_error():
    with pytest.raises(ConfigError, match="xla_force_host_platform_device_count"):
        dist.make_mesh(len(jax.devices()) + 1)


FOUR_DEVICES = textwrap.dedent(
    """
    import json, os, sys, time
    T0 = time.perf_counter()
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    import jax, numpy as np
    from jaxnas.data import load_table
    from jaxnas.env import make_env
    from jaxnas.experiments.presets import get_preset
    from jaxnas.experiments.transfer_cli import main
    from jaxnas.trainer import distributed as dist
    from jaxnas.trainer.agent import make_agent
    from jaxnas.trainer.evaluate import evaluate

    data, out_dir = sys.argv[1], sys.argv[2]
    table = load_table("micro", data)
    cfg = get_preset("tiny").config
    env = make_env(table, "class_object", horizon=cfg.horizon, reward_mode=cfg.reward_mode, normalisation=cfg.normalisation)
    agent = make_agent(cfg, env)
    mesh = dist.make_mesh(4)
    state = dist.init_sharded_state(agent, env, jax.random.PRNGKey(0), mesh)
    out = {"devices": len(jax.devices()), "spread": [dist.params_spread(state)]}
    archs = np.asarray(state.actors.env_state.arch)
    out["actors_differ"] = bool(all(not np.array_equal(archs[0], archs[d]) for d in range(1, 4)))
    eval_key = jax.random.PRNGKey(99)
    score = lambda st, eps=0.0: evaluate(agent.apply_fn, dist.replica_params(st), env, eval_key, 512, eps)["normalised_score"]
    out["initial"], out["random_walk"] = score(state), score(state, 1.0)
    out["t_init_eval"] = time.perf_counter() - T0
    env_global = dist.replicate(env, mesh)
    learning = []
    for _ in range(int(sys.argv[3])):
        state, m = dist.train_chunk_sharded(agent, env_global, state, 8, mesh)
        learning.append(np.asarray(m.learning).tolist())
        out["spread"].append(dist.params_spread(state))
    out["learning_last_chunk"] = learning[-1]
    out["t_train"] = time.perf_counter() - T0
    out["final"] = score(state)
    out["env_steps_per_device"] = np.asarray(state.env_steps).tolist()
    out["total_env_steps"] = dist.total_env_steps(state)
    out["sharding"] = list(state.learner.params["params"]["final_norm"]["scale"].sharding.spec)
    actions = np.asarray(state.replay.experience.action)
    out["replays_differ"] = bool(not np.array_equal(actions[0], actions[1]))
    out["cli_exit"] = main([
        "--source", "class_object", "--target", "room_layout", "--preset", "tiny", "--devices", "4",
        "--pretrain-steps", "1024", "--finetune-steps", "1024", "--retrain-steps", "1024",
        "--out", out_dir, "--data", data, "--no-progress",
    ])
    out["t_total"] = time.perf_counter() - T0
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def four_devices(shared_data_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("four-devices")
    chunks = 16  # 16 x 8 iterations x 4 devices x 32 steps = 16,384 env steps
    proc = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICES, str(shared_data_dir), str(out_dir), str(chunks)],
        capture_output=True, text=True, timeout=600, env=dict(os.environ),
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):]), out_dir, chunks


def test_four_devices_keep_identical_params(four_devices):
    out, _, chunks = four_devices
    assert out["devices"] == 4
    assert out["sharding"] == ["devices"]  # leading axis sharded over the mesh
    assert len(out["spread"]) == chunks + 1
    assert all(s == 0.0 for s in out["spread"]), out["spread"]  # bitwise identical replicas
    assert all(all(row) for row in out["learning_last_chunk"])  # every device was learning


def test_four_devices_act_independently(four_devices):
    out, _, chunks = four_devices
    assert out["actors_differ"] and out["replays_differ"]
    per_device = out["env_steps_per_device"]
    assert len(set(per_device)) == 1
    assert out["total_env_steps"] == 4 * per_device[0]
    assert per_device[0] >= chunks * 8 * 32


def test_four_devices_learn(four_devices):
    out, _, _ = four_devices
    # 512 evaluation episodes: standard error about 0.004 on these scores.
    assert out["final"] > out["initial"] + 0.03, out
    assert out["final"] > out["random_walk"], out


def test_devices_flag_writes_results(four_devices):
    out, out_dir, _ = four_devices
    assert out["cli_exit"] == 0
    results = json.loads((out_dir / "results.json").read_text())
    assert results["config"]["devices"] == 4
    assert set(results["regimes"]) == {"scratch", "zero_shot", "finetune", "retrain"}
    assert results["regimes"]["scratch"]["env_steps"] >= 1024
    assert "seeds" not in results
