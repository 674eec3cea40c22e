"""experiments/baselines.py end to end on the real micro table (tiny budgets)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "baselines.py"
DATA = REPO.parent / "shared" / "data" / "transnas-bench-101"
ALGOS = ["random_search", "local_search", "evolution"]
Q, S = 20, 8


def _start(args, out):
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--data", str(DATA), "--out", str(out), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


ERROR_CASES = {
    "unknown_algo": (["--algo", "random_search,bayesopt"], "unknown algorithm 'bayesopt'"),
    "unknown_task": (["--task", "jigsaw"], "unknown task"),
    "too_many_queries": (["--queries", "5000", "--seeds", "2"], "4096"),
    "no_seeds": (["--seeds", "0"], "--seeds must be at least 1"),
    "bad_flag_value": (["--queries", "many"], "--queries"),
    "unknown_space": (["--space", "nano"], "--space"),
}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """All command lines started at once (each pays the JAX import; they overlap)."""
    if not (DATA / "micro.csv").is_file():
        pytest.skip(f"real data not found at {DATA}")
    base = tmp_path_factory.mktemp("baselines_cli")
    procs = {
        "ok": (
            base / "ok",
            _start(["--space", "micro", "--task", "class_object", "--algo", ",".join(ALGOS),
                    "--queries", str(Q), "--seeds", str(S), "--population-size", "10",
                    "--sample-size", "3"], base / "ok"),
        )
    }
    for name, (args, _) in ERROR_CASES.items():
        procs[name] = (base / name, _start(args, base / name))
    out = {}
    for name, (folder, proc) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        out[name] = (folder, proc.returncode, stdout, stderr)
    return out


@pytest.fixture(scope="module")
def class_object_column():
    import csv

    with open(DATA / "micro.csv", newline="") as f:
        return np.array([float(r["class_object"]) for r in csv.DictReader(f)])


def test_success_writes_json_and_png(cli_runs, class_object_column):
    folder, rc, stdout, stderr = cli_runs["ok"]
    assert rc == 0, stderr
    assert sorted(p.name for p in folder.iterdir()) == ["baselines.json", "baselines.png"]
    assert (folder / "baselines.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((folder / "baselines.json").read_text())
    assert report["space"] == "micro" and report["task"] == "class_object"
    assert report["queries"] == Q and report["seeds"] == S
    assert report["data_source"].endswith("micro.csv")
    best, worst = report["global_best_valid"], report["global_worst_valid"]
    assert best == pytest.approx(class_object_column.max(), abs=1e-4)
    assert worst == pytest.approx(class_object_column.min(), abs=1e-4)
    assert list(report["algorithms"]) == ALGOS
    for name, algo in report["algorithms"].items():
        assert algo["queries"] == list(range(1, Q + 1))
        for field in ("best_valid_mean", "best_valid_std", "best_valid_sem",
                      "best_normalised_mean", "best_normalised_std"):
            assert len(algo[field]) == Q, (name, field)
        mean = np.array(algo["best_valid_mean"])
        assert (np.diff(mean) >= -1e-9).all(), f"{name}: best-so-far curve decreases"
        assert (mean <= best + 1e-6).all() and (mean >= worst - 1e-6).all()
        assert (np.array(algo["best_valid_std"]) >= 0).all()
        assert (np.array(algo["best_valid_sem"]) >= 0).all()
        norm = np.array(algo["best_normalised_mean"])
        np.testing.assert_allclose(norm, (mean - worst) / (best - worst), atol=1e-5)
        assert (norm >= -1e-9).all() and (norm <= 1 + 1e-9).all()
        # Searching 20 of 4096 architectures beats the median architecture on average.
        assert norm[-1] > np.median((class_object_column - worst) / (best - worst))
        assert algo["runs_stopped_early"] == 0
    assert report["algorithms"]["evolution"]["hyperparameters"]["population_size"] == 10
    assert report["algorithms"]["evolution"]["hyperparameters"]["sample_size"] == 3
    assert "local_search" in stdout and "wrote" in stdout


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_user_mistakes_exit_2_with_one_line(cli_runs, case):
    folder, rc, stdout, stderr = cli_runs[case]
    expected = ERROR_CASES[case][1]
    assert rc == 2, (case, stderr)
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("experiments/baselines.py: error:") and expected in lines[0], lines
    # Nothing (not even a partial file) was written.
    assert not folder.exists() or not any(folder.iterdir())


def test_help_documents_every_flag():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for flag in ("--space", "--task", "--algo", "--queries", "--seeds", "--seed", "--data",
                 "--out", "--population-size", "--sample-size", "--band"):
        assert flag in proc.stdout


def test_cli_algorithm_names_match_the_library():
    import importlib.util

    from jaxnas.baselines import ALGORITHMS

    spec = importlib.util.spec_from_file_location("baselines_cli_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert tuple(module.ALGORITHMS) == tuple(ALGORITHMS)
