"""experiments/run.py end to end on the real data, and its user errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "experiments" / "run.py"


def run_cli(*args, timeout=900):
    return subprocess.run(
        [sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=REPO,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--source", "class_object", "--target", "nope"], "unknown target task 'nope'"),
        (["--source", "class_object", "--target", "class_object"], "two different tasks"),
        (["--source", "class_object", "--target", "room_layout", "--retrain-steps", "0"], "--retrain-steps"),
        (["--source", "class_object", "--target", "room_layout", "--data", "/nonexistent/x.pth"], "/nonexistent/x.pth"),
        (["--source", "class_object"], "--target"),
    ],
)
def test_user_errors_exit_2_without_traceback(args, message, tmp_path):
    out = run_cli(*args, "--out", str(tmp_path / "o"))
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "o" / "results.json").exists()


def test_help_documents_every_flag():
    out = run_cli("--help")
    assert out.returncode == 0
    for flag in ["--source", "--target", "--space", "--data", "--out", "--seed", "--preset",
                 "--pretrain-steps", "--finetune-steps", "--retrain-steps", "--resume"]:
        assert flag in out.stdout


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("run")
    proc = run_cli("--source=class_object", "--target=autoencoder", "--preset=tiny", "--out", str(out_dir), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out_dir, proc.stdout


def test_results_schema(tiny_run):
    out_dir, stdout = tiny_run
    results = json.loads((out_dir / "results.json").read_text())
    assert results["config"]["source"] == "class_object" and results["config"]["target"] == "autoencoder"
    assert results["config"]["config"]["num_envs"] == 8  # the tiny preset, rerunnable from here
    assert set(results["regimes"]) == {"scratch", "zero_shot", "finetune", "retrain"}
    best = results["global_best_valid"]
    for name, regime in results["regimes"].items():
        final = regime["final"]
        for key in ["best_valid_mean", "normalised_score", "regret", "optimum_rate", "distinct_queries_mean"]:
            assert key in final, (name, key)
        assert final["best_valid_mean"] <= best + 1e-6
        assert final["regret"] == pytest.approx(best - final["best_valid_mean"], abs=1e-9)
        assert 0.0 <= final["normalised_score"] <= 1.0
        assert "best_test_mean" not in final  # the shared CSVs have no test metric: never faked
        curve = regime["curve"]
        assert len(curve["env_steps"]) == len(curve["score"]) >= 1
        assert curve["env_steps"] == sorted(curve["env_steps"])
        assert "time_to_match" in regime and "wall_clock_s" in regime and "env_steps_per_s" in regime
    # zero-shot is the first point of the transfer curve; fine-tune is a prefix of retrain
    r = results["regimes"]
    assert r["zero_shot"]["final"] == r["retrain"]["curve"]["score"][0] or \
        r["zero_shot"]["final"]["normalised_score"] == r["retrain"]["curve"]["score"][0]
    n = len(r["finetune"]["curve"]["score"])
    assert r["finetune"]["curve"]["score"] == r["retrain"]["curve"]["score"][:n]
    assert r["scratch"]["time_to_match"] is not None
    assert set(results["baselines"]["algorithms"]) == {"random_search", "local_search", "evolution"}
    assert (out_dir / "curves.png").stat().st_size > 10_000
    assert "zero_shot" in stdout and "random walk" in stdout


def test_second_run_reuses_the_pretraining(tiny_run):
    out_dir, _ = tiny_run
    proc = run_cli("--source=class_object", "--target=room_layout", "--preset=tiny", "--out", str(out_dir), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "reused the completed pretraining checkpoint" in proc.stdout
    results = json.loads((out_dir / "results.json").read_text())
    assert results["pretrain"]["reused_checkpoint"] is True
