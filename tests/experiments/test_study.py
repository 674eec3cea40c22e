"""The transfer study (jaxnas.experiments.study / report, experiments/study.py) on the real micro
table with the ``tiny`` preset and 2 tasks.

One in-process study is shared by the tests (JAX compiles once): it is stopped after its first
pair, resumed, then extended by a third source with ``reuse_scratch``. Command lines run as
subprocesses beside it: bad input (exit 2), SIGTERM during training (exit 143), and --resume of
the finished study (rewrites the outputs without training).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

# Compile time dominates tiny runs on CPU; only effective if JAX is not initialised yet.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "study.py"
DATA = REPO.parent / "shared" / "data" / "transnas-bench-101"
TASKS = ("class_object", "room_layout")
# The tiny preset with half its pretraining / retraining budget (2 evaluations per phase).
STEPS = {"pretrain_steps": 2048, "retrain_steps": 2048}
STEP_FLAGS = ["--pretrain-steps", "2048", "--retrain-steps", "2048"]
PNG = b"\x89PNG\r\n\x1a\n"


def _env():
    env = dict(os.environ)
    # This checkout's jaxnas, whatever `pip install -e` points at (a script's sys.path starts
    # with its own folder, not the repository).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start(args, **kw):
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--data", str(DATA), "--no-progress", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), **kw,
    )


ERROR_CASES = {
    "unknown_task": (["--tasks", "class_object,jigsaw"], "unknown task(s) 'jigsaw'"),
    "one_task": (["--tasks", "class_object"], "at least 2 tasks"),
    "no_tasks": (["--tasks", ","], "at least 2 tasks"),
    "zero_seeds": (["--tasks", "class_object,room_layout", "--seeds", "0"], "seeds must be at least 1"),
    "negative_seeds": (["--seeds", "-3"], "seeds must be at least 1"),
    "duplicate_task": (["--tasks", "class_object,room_layout,class_object"], "listed twice"),
    "unknown_preset": (["--preset", "huge"], "unknown preset 'huge'"),
    "zero_steps": (["--retrain-steps", "0"], "--retrain-steps must be a positive"),
    "report_without_study": (["--report-only"], "study.json does not exist"),
}


@pytest.fixture(scope="module")
def data_dir():
    if not (DATA / "micro.csv").is_file():
        pytest.skip(f"real data not found at {DATA}")
    return DATA


@pytest.fixture(scope="module")
def background(data_dir, tmp_path_factory):
    """Subprocesses started first so they overlap the in-process study: the error cases and a
    study that gets SIGTERM once it is training."""
    base = tmp_path_factory.mktemp("study_cli")
    errors = {name: _start(["--preset", "tiny", "--out", str(base / name), *args])
              for name, (args, _) in ERROR_CASES.items()}
    term_out = base / "sigterm"
    term = _start(["--preset", "tiny", *STEP_FLAGS, "--tasks", ",".join(TASKS), "--out", str(term_out)])
    lines: list[str] = []

    def watch():
        for line in term.stdout:
            lines.append(line)
            if "pretraining on" in line:
                time.sleep(1.0)
                term.send_signal(signal.SIGTERM)

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    return {"errors": errors, "term": (term, term_out, lines, reader)}


@pytest.fixture(scope="module")
def study_run(data_dir, background, tmp_path_factory):
    """The shared in-process study (see the module docstring)."""
    from jaxnas.data import load_table
    from jaxnas.experiments.report import write_outputs
    from jaxnas.experiments.study import StudySpec, pair_path, run_study
    from jaxnas.trainer.phase import Interrupted

    table = load_table("micro", data=data_dir)
    out = tmp_path_factory.mktemp("study") / "out"
    spec = StudySpec.from_preset("tiny", tasks=TASKS, seeds=1, **STEPS)
    logs = {"first": [], "resume": [], "extra": []}
    first = pair_path(out, *TASKS, 0)
    stop = {"now": False}

    def after_pair(study):
        stop["now"] = True  # as if Ctrl-C came right after the first pair finished

    t0 = time.perf_counter()
    with pytest.raises(Interrupted):
        run_study(spec, table, out, should_stop=lambda: stop["now"], progress=False,
                  log=logs["first"].append, on_update=after_pair)
    interrupted_files = sorted(p.relative_to(out) for p in (out / "pairs").rglob("*.json"))
    first_mtime = first.stat().st_mtime_ns
    study = run_study(spec, table, out, resume=True, progress=False, log=logs["resume"].append)
    paths = write_outputs(study, out)

    # A third source for one of the targets, reusing the scratch agent of the study.
    from jaxnas.experiments.transfer import run_transfer

    extra = run_transfer(spec.transfer_spec("autoencoder", "room_layout", 0), table, out,
                         resume=False, progress=False, log=logs["extra"].append, reuse_scratch=True)
    return {
        "spec": spec, "table": table, "out": out, "study": study, "paths": paths, "logs": logs,
        "interrupted_files": interrupted_files, "first_mtime": first_mtime, "first": first,
        "extra": extra, "seconds": time.perf_counter() - t0,
    }


# ----------------------------------------------------------------------------- the study itself


def test_interrupt_keeps_finished_pairs_and_resume_skips_them(study_run):
    assert study_run["interrupted_files"] == [Path("pairs/class_object-to-room_layout/seed0.json")]
    assert any("[1/2] class_object -> room_layout" in m for m in study_run["logs"]["first"])
    assert not any("[2/2]" in m for m in study_run["logs"]["first"])
    resume_log = study_run["logs"]["resume"]
    assert any("[1/2]" in m and "skipped" in m for m in resume_log), resume_log
    assert any(m.startswith("[2/2] room_layout -> class_object") and "skipped" not in m for m in resume_log)
    assert study_run["first"].stat().st_mtime_ns == study_run["first_mtime"]  # not rewritten


def test_pretraining_and_scratch_are_shared(study_run):
    out = study_run["out"]
    names = sorted(p.name.rsplit("-", 1)[0] for p in (out / "checkpoints").iterdir())
    assert names == ["pretrain-autoencoder", "pretrain-class_object", "pretrain-room_layout",
                     "scratch-class_object", "scratch-room_layout",
                     "transfer-autoencoder-room_layout", "transfer-class_object-room_layout",
                     "transfer-room_layout-class_object"]
    assert any("reused the completed scratch agent" in m for m in study_run["logs"]["extra"])
    extra = study_run["extra"]["regimes"]["scratch"]
    pair = next(r for r in study_run["study"]["runs"] if r["target"] == "room_layout")
    assert extra["final"] == pair["results"]["regimes"]["scratch"]["final"]
    assert extra["curve"] == pair["results"]["regimes"]["scratch"]["curve"]


def test_study_json_has_every_run_and_the_aggregate(study_run):
    out = study_run["out"]
    saved = json.loads((out / "study.json").read_text())
    assert saved["complete"] is True and saved["runs_done"] == saved["runs_total"] == 2
    assert saved["study"]["tasks"] == list(TASKS) and saved["study"]["preset"] == "tiny"
    assert {(r["source"], r["target"], r["seed"]) for r in saved["runs"]} == {
        ("class_object", "room_layout", 0), ("room_layout", "class_object", 0)}
    for r in saved["runs"]:
        on_disk = json.loads((out / r["file"]).read_text())
        assert r["results"]["regimes"] == on_disk["regimes"]
        agg = saved["aggregate"]["pairs"][r["source"]][r["target"]]
        scratch = saved["aggregate"]["targets"][r["target"]]["scratch"]
        for regime in ("zero_shot", "finetune", "retrain"):
            final = r["results"]["regimes"][regime]["final"]["normalised_score"]
            stats = agg["regimes"][regime]["final"]["normalised_score"]
            assert stats["n"] == 1 and stats["mean"] == pytest.approx(final)
            assert stats["ci_low"] is None  # one seed: no interval
            s = r["results"]["regimes"]["scratch"]["final"]["normalised_score"]
            assert agg["regimes"][regime]["delta_vs_scratch"]["mean"] == pytest.approx(final - s)
        curve = r["results"]["regimes"]["retrain"]["curve"]["score"]
        assert agg["regimes"]["retrain"]["curve_mean"]["mean"] == pytest.approx(np.mean(curve))
        assert len(curve) == 3  # evaluations at 0, 1024 and 2048 steps
        assert scratch["final"]["normalised_score"]["mean"] == pytest.approx(
            r["results"]["regimes"]["scratch"]["final"]["normalised_score"])
        g = agg["gain"]
        best = max(agg["regimes"][k]["final"]["normalised_score"]["mean"] for k in ("retrain", "finetune"))
        assert g["gains"] == (best > scratch["final"]["normalised_score"]["mean"])


def test_report_and_figures(study_run):
    out = study_run["out"]
    for name in ("heatmap.png", "curves_grid.png"):
        assert (out / name).read_bytes()[:8] == PNG
    text = (out / "report.md").read_text()
    for target in TASKS:
        assert f"### Target: {target}" in text
    assert "| (none) | scratch |" in text
    for source, target in (TASKS, TASKS[::-1]):
        for regime in ("zero-shot", "fine-tune", "retrain"):
            assert f"| {source} | {regime} |" in text
        assert f"| {source} -> {target} |" in text  # time to match
    assert "Rule: a pair **gains**" in text
    agg = study_run["study"]["aggregate"]["pairs"]
    n_gain = sum(agg[s][t]["gain"]["gains"] for s, t in (TASKS, TASKS[::-1]))
    assert f"**{n_gain} of 2 pairs gain**" in text
    for s, t in (TASKS, TASKS[::-1]):
        verdict = "**gains**" if agg[s][t]["gain"]["gains"] else "**does not gain**"
        assert f"- {s} -> {t}: {verdict}" in text


# ----------------------------------------------------------------------------- statistics


def test_t_quantiles_and_intervals():
    from jaxnas.experiments.study import intervals_overlap, mean_ci, t_quantile_975

    assert t_quantile_975(1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile_975(4) == pytest.approx(2.7764, abs=1e-4)
    assert t_quantile_975(30) == pytest.approx(2.0423, abs=1e-4)
    assert t_quantile_975(40) == pytest.approx(2.0211, abs=1e-4)
    assert t_quantile_975(120) == pytest.approx(1.9799, abs=1e-4)
    try:
        from scipy import stats
    except ImportError:
        stats = None
    if stats is not None:
        for df in (1, 2, 7, 29, 31, 50, 200, 5000):
            assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-6)
    c = mean_ci([1.0, 2.0, 3.0])
    assert c["mean"] == 2.0 and c["n"] == 3
    assert c["half_width"] == pytest.approx(4.30265273 * 1.0 / math.sqrt(3))
    assert c["ci_low"] == pytest.approx(2.0 - c["half_width"])
    one = mean_ci([0.5, None, float("nan")])
    assert one["n"] == 1 and one["mean"] == 0.5 and one["ci_low"] is None
    assert intervals_overlap(c, mean_ci([3.0, 4.0, 5.0])) is True
    assert intervals_overlap(mean_ci([1.0, 1.05, 1.1]), mean_ci([2.0, 2.05, 2.1])) is False
    assert intervals_overlap(one, c) is None


def _shifted(results: dict, delta: float) -> dict:
    """A copy of a pair's results with every regime's final score moved by ``delta`` (stands in
    for another seed)."""
    r = copy.deepcopy(results)
    for name, reg in r["regimes"].items():
        reg["final"]["normalised_score"] += delta if name != "scratch" else -delta
        reg["curve"]["score"] = [s + delta for s in reg["curve"]["score"]]
    return r


def test_two_seed_aggregate_report_and_figures(study_run, tmp_path):
    from jaxnas.experiments.report import delta_matrix, write_outputs
    from jaxnas.experiments.study import make_study

    spec = dataclasses.replace(study_run["spec"], seeds=2)
    runs = [dict(r) for r in study_run["study"]["runs"]]
    runs += [{**r, "seed": 1, "results": _shifted(r["results"], 0.02)} for r in study_run["study"]["runs"]]
    study = make_study(spec, runs)
    assert study["complete"] and study["runs_total"] == 4
    src, tgt = TASKS
    pair = study["aggregate"]["pairs"][src][tgt]
    base = study_run["study"]["runs"][0]["results"]["regimes"]
    a = base["retrain"]["final"]["normalised_score"]
    retrain = pair["regimes"]["retrain"]["final"]["normalised_score"]
    assert retrain["n"] == 2 and retrain["mean"] == pytest.approx(a + 0.01)
    hw = 12.7062047 * np.std([a, a + 0.02], ddof=1) / math.sqrt(2)
    assert retrain["half_width"] == pytest.approx(hw)
    # Paired differences: seed 1 is 0.04 better relative to its scratch than seed 0.
    d0 = a - base["scratch"]["final"]["normalised_score"]
    delta = pair["regimes"]["retrain"]["delta_vs_scratch"]
    assert delta["values"] == pytest.approx([d0, d0 + 0.04])
    mean, half = delta_matrix(study, "retrain")
    assert mean[0, 1] == pytest.approx(d0 + 0.02) and half[0, 1] == pytest.approx(delta["half_width"])
    assert np.isnan(mean[0, 0]) and np.isnan(mean[1, 1])
    curve = pair["transfer_curve"]
    assert curve["n"] == 2 and curve["mean"][0] == pytest.approx(base["retrain"]["curve"]["score"][0] + 0.01)
    paths = write_outputs(study, tmp_path)
    text = paths["report"].read_text()
    assert f"{retrain['mean']:.3f} [{retrain['ci_low']:.3f}, {retrain['ci_high']:.3f}]" in text
    assert "paired difference CI" in text and "no CI with 1 seed" not in text
    assert paths["heatmap"].read_bytes()[:8] == PNG and paths["curves_grid"].read_bytes()[:8] == PNG


def test_partial_study_is_reported_as_partial(study_run):
    from jaxnas.experiments.report import render_report
    from jaxnas.experiments.study import make_study

    study = make_study(study_run["spec"], study_run["study"]["runs"][:1])
    assert not study["complete"] and study["missing"] == ["room_layout->class_object seed 0"]
    assert "room_layout" not in study["aggregate"]["pairs"]
    assert "Partial study: 1 of 2 pair runs done" in render_report(study)


def test_spec_validation(study_run):
    from jaxnas.errors import ConfigError
    from jaxnas.experiments.study import StudySpec

    table = study_run["table"]
    with pytest.raises(ConfigError, match="unknown task"):
        StudySpec.from_preset("tiny", tasks=("class_object", "jigsaw")).validate(table)
    with pytest.raises(ConfigError, match="at least 2 tasks"):
        StudySpec.from_preset("tiny", tasks=("class_object",)).validate()
    with pytest.raises(ConfigError, match="seeds must be at least 1"):
        StudySpec.from_preset("tiny", tasks=TASKS, seeds=0).validate()
    assert len(StudySpec.from_preset("tiny").pairs()) == 12


def test_fresh_study_refuses_a_folder_with_results(study_run):
    from jaxnas.errors import ConfigError
    from jaxnas.experiments.study import run_study

    with pytest.raises(ConfigError, match="--resume"):
        run_study(study_run["spec"], study_run["table"], study_run["out"], progress=False, log=lambda m: None)


def test_resume_refuses_results_of_other_settings(study_run, tmp_path):
    import shutil

    from jaxnas.errors import ConfigError
    from jaxnas.experiments.study import run_study

    out = tmp_path / "copy"
    shutil.copytree(study_run["out"] / "pairs", out / "pairs")
    spec = dataclasses.replace(study_run["spec"], retrain_steps=4096)
    with pytest.raises(ConfigError, match="retrain_steps"):
        run_study(spec, study_run["table"], out, resume=True, progress=False, log=lambda m: None)


# ----------------------------------------------------------------------------- command line


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_bad_input_is_one_line_and_exit_2(background, case):
    proc = background["errors"][case]
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 2, (stdout, stderr)
    assert stderr.strip().count("\n") == 0, stderr
    assert stderr.startswith("error: ") and ERROR_CASES[case][1] in stderr
    assert "Traceback" not in stderr


def test_sigterm_saves_and_exits_143(background):
    term, out, lines, reader = background["term"]
    try:
        rc = term.wait(timeout=240)
    finally:
        if term.poll() is None:
            term.kill()
    reader.join(timeout=10)
    stderr = term.stderr.read()
    assert rc == 143, ("".join(lines), stderr)
    assert "--resume" in stderr
    ckpts = list((out / "checkpoints").glob("pretrain-class_object-*"))
    assert len(ckpts) == 1 and any(p.name.isdigit() for p in ckpts[0].iterdir())  # a saved step
    assert not (out / "pairs").exists() and not (out / "study.json").exists()


def test_cli_resume_of_a_finished_study_rewrites_outputs(study_run):
    out = study_run["out"]
    for name in ("report.md", "heatmap.png", "curves_grid.png", "study.json"):
        (out / name).unlink()
    proc = _start(["--preset", "tiny", *STEP_FLAGS, "--tasks", ",".join(TASKS), "--out", str(out), "--resume"])
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    assert stdout.count("skipped") == 2 and "pretraining" not in stdout
    assert json.loads((out / "study.json").read_text())["complete"] is True
    assert (out / "heatmap.png").read_bytes()[:8] == PNG and (out / "report.md").is_file()


def test_cli_report_only_redraws_from_study_json(study_run, tmp_path):
    out = tmp_path / "copy"
    out.mkdir()
    saved = json.loads((study_run["out"] / "study.json").read_text())
    saved["aggregate"] = {"targets": {}, "pairs": {}}  # stale: must be recomputed from the runs
    (out / "study.json").write_text(json.dumps(saved))
    proc = _start(["--report-only", "--out", str(out)])
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    rebuilt = json.loads((out / "study.json").read_text())
    assert rebuilt["aggregate"]["pairs"] == json.loads(json.dumps(study_run["study"]["aggregate"]["pairs"]))
    assert (out / "heatmap.png").read_bytes()[:8] == PNG and (out / "curves_grid.png").read_bytes()[:8] == PNG
    assert "### Target: room_layout" in (out / "report.md").read_text()
    assert not (out / "pairs").exists() and not (out / "checkpoints").exists()
