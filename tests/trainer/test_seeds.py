"""Many seeds in one program: vmapped training matches single-seed runs, and the command line
reports means and 95% intervals over seeds."""

import math

import jax
import numpy as np
import pytest

from jaxnas.env import make_env
from jaxnas.experiments.presets import get_preset
from jaxnas.experiments.transfer import REGIMES, TransferSpec, run_transfer
from jaxnas.trainer import seeds as S
from jaxnas.trainer.agent import make_agent
from jaxnas.trainer.checkpoint import trees_equal
from jaxnas.trainer.evaluate import evaluate
from jaxnas.trainer.loop import init_train_state, train_chunk
from jaxnas.trainer.phase import Interrupted

SEEDS = (3, 8)
CHUNK = 8


def _max_diff(a, b) -> float:
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def setup(micro_table):
    # eval_every 256 -> 8 iterations between evaluations, so phases use the same CHUNK.
    cfg = get_preset("tiny").config.replace(eval_every=256)
    env = make_env(micro_table, "class_object", horizon=cfg.horizon, reward_mode=cfg.reward_mode, normalisation=cfg.normalisation)
    return cfg, env, make_agent(cfg, env)


@pytest.fixture(scope="module")
def runs(setup):
    """Two chunks (16 iterations, about 9 learner updates) of K = 2 vmapped seeds and of the
    same seeds one at a time."""
    cfg, env, agent = setup
    keys = S.seed_keys(SEEDS)
    start = S.init_seeds_state(agent, env, keys)
    initial = jax.tree.map(np.asarray, start)
    stacked, metrics = start, []
    for _ in range(2):
        stacked, m = S.train_chunk_seeds(agent, env, stacked, CHUNK)
        metrics.append(m)
    singles, single_metrics = [], []
    for seed in SEEDS:
        st, ms = init_train_state(agent, env, jax.random.PRNGKey(seed)), []
        for _ in range(2):
            st, m = train_chunk(agent, env, st, CHUNK)
            ms.append(m)
        singles.append(st)
        single_metrics.append(ms)
    return initial, stacked, metrics, singles, single_metrics


def test_initial_states_equal_single_seed_inits_bitwise(setup, runs):
    cfg, env, agent = setup
    initial = runs[0]
    for i, seed in enumerate(SEEDS):
        assert trees_equal(S.take(initial, i), init_train_state(agent, env, jax.random.PRNGKey(seed)))


def test_vmapped_seeds_match_single_seed_runs(runs):
    _, stacked, metrics, singles, single_metrics = runs
    for i, single in enumerate(singles):
        mine = S.take(stacked, i)
        assert bool(np.asarray(single_metrics[i][1].learning).all())  # learner updates were compared
        # Same trajectory: every action, reward and observation in replay, and the actors.
        assert trees_equal(mine.replay.experience, single.replay.experience)
        assert trees_equal(mine.actors, single.actors)
        assert int(mine.env_steps) == int(single.env_steps)
        # Same parameters up to float rounding (a batched matmul may sum in another order).
        assert _max_diff(mine.learner.params, single.learner.params) < 1e-5
        for c in range(2):
            np.testing.assert_allclose(np.asarray(metrics[c].loss)[i], np.asarray(single_metrics[i][c].loss), rtol=1e-4, atol=1e-6)


def test_seeds_are_independent(runs):
    _, stacked, _, _, _ = runs
    assert _max_diff(S.take(stacked, 0).learner.params, S.take(stacked, 1).learner.params) > 1e-3
    assert not trees_equal(S.take(stacked, 0).actors, S.take(stacked, 1).actors)


def test_evaluate_seeds_matches_evaluate_per_seed(setup, runs):
    cfg, env, agent = setup
    _, stacked, _, _, _ = runs
    eval_keys = S.seed_keys([101, 202])
    together = S.evaluate_seeds(agent.apply_fn, stacked.learner.params, env, eval_keys, 64)
    for i in range(len(SEEDS)):
        alone = evaluate(agent.apply_fn, S.take(stacked, i).learner.params, env, eval_keys[i], 64)
        assert together[i].keys() == alone.keys()
        for k in alone:
            assert together[i][k] == pytest.approx(alone[k], rel=1e-6, abs=1e-6), k


def test_whole_training_in_one_vmapped_program(setup, runs):
    cfg, env, agent = setup
    singles = runs[3]
    eval_keys = S.seed_keys([101, 202])
    state, metrics, outcome = S.train_seeds(agent, env, S.seed_keys(SEEDS), eval_keys, 2 * CHUNK, 64)
    assert np.asarray(metrics.loss).shape == (len(SEEDS), 2 * CHUNK)
    for i, single in enumerate(singles):
        assert trees_equal(S.take(state, i).replay.experience, single.replay.experience)
        assert _max_diff(S.take(state, i).learner.params, single.learner.params) < 1e-5
        alone = evaluate(agent.apply_fn, S.take(state, i).learner.params, env, eval_keys[i], 64)
        assert float(np.asarray(outcome.best_valid[i], np.float64).mean()) == pytest.approx(alone["best_valid_mean"], abs=1e-6)


def test_interrupted_seeds_phase_resumes_exactly(setup, runs, tmp_path):
    cfg, env, agent = setup
    stacked = runs[1]  # the same seeds after two uninterrupted chunks
    keys, eval_keys = S.seed_keys(SEEDS), S.seed_keys([101, 202])
    calls = {"n": 0}

    def stop_after_first_chunk():
        calls["n"] += 1
        return calls["n"] == 1

    def phase(**kw):
        return S.run_seeds_phase(agent, env, S.init_seeds_state(agent, env, keys), 2 * cfg.eval_every,
                                 eval_keys, checkpoint_dir=tmp_path / "ck", progress=False, **kw)

    with pytest.raises(Interrupted):
        phase(should_stop=stop_after_first_chunk)
    resumed = phase(resume=True)
    assert resumed.curve_env_steps == [0, 256, 512]
    assert trees_equal(resumed.state, stacked)
    final = S.evaluate_seeds(agent.apply_fn, stacked.learner.params, env, eval_keys, cfg.eval_episodes)
    assert resumed.evaluations[-1] == final
    assert resumed.member(1).curve_scores == [e[1]["normalised_score"] for e in resumed.evaluations]


def test_mean_ci95_uses_student_t():
    out = S.mean_ci95([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * np.std([1, 2, 3, 4], ddof=1) / 2
    assert out["mean"] == pytest.approx(2.5)
    assert out["ci95_low"] == pytest.approx(2.5 - half, rel=1e-7)
    assert out["ci95_high"] == pytest.approx(2.5 + half, rel=1e-7)
    assert out["values"] == [1.0, 2.0, 3.0, 4.0]
    single = S.mean_ci95([0.7])
    assert single["mean"] == 0.7 and math.isnan(single["ci95_low"]) and math.isnan(single["ci95_high"])
    same = S.mean_ci95([0.5, 0.5, 0.5])
    assert same["ci95_low"] == same["ci95_high"] == 0.5


def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in list(range(1, 40)) + [50, 100, 1000]:
        assert S.t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-5), df


def test_seeds_option_reports_mean_and_interval(setup, micro_table, tmp_path):
    cfg, _, _ = setup
    spec = TransferSpec(
        space="micro", source="class_object", target="room_layout", pretrain_steps=256,
        finetune_steps=256, retrain_steps=512, config=cfg, seed=4, baseline_seeds=8,
    )
    res = run_transfer(spec, micro_table, tmp_path, progress=False, log=lambda m: None, seeds=2)
    assert res["seed_values"] == [4, 5] and res["config"]["seeds"] == 2
    assert set(res["seeds"]) == set(REGIMES)
    for name in REGIMES:
        block = res["seeds"][name]
        for metric in ("normalised_score", "best_valid_mean", "regret", "optimum_rate", "distinct_queries_mean"):
            s = block[metric]
            assert len(s["values"]) == 2
            assert s["mean"] == pytest.approx(np.mean(s["values"]))
            assert s["ci95_low"] <= s["mean"] <= s["ci95_high"]
            # The single-seed fields hold the mean over seeds.
            assert res["regimes"][name]["final"][metric] == pytest.approx(s["mean"])
    assert res["regimes"]["scratch"]["curve"]["env_steps"] == [0, 256, 512]
    # Two different seeds do not give the same scratch agent.
    assert res["seeds"]["scratch"]["normalised_score"]["values"][0] != res["seeds"]["scratch"]["normalised_score"]["values"][1]


@pytest.mark.parametrize("flags, message", [
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--devices", "0"], "--devices must be at least 1"),
    (["--devices", "2", "--seeds", "2"], "not supported"),
])
def test_bad_seeds_and_devices_flags_exit_2(flags, message, capsys):
    from jaxnas.experiments.transfer_cli import main

    assert main(["--source", "class_object", "--target", "room_layout", *flags]) == 2
    assert message in capsys.readouterr().err
