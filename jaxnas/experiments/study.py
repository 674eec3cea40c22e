"""The transfer study: every ordered (source, target) pair of a set of tasks, over several seeds.

For each seed and each ordered pair it runs the transfer experiment of
:mod:`jaxnas.experiments.transfer` (zero-shot, fine-tune, retrain) in one output folder, so the
pretraining on a source is trained once per (source, seed) and shared by all its targets, and
the scratch agent is trained once per (target, seed) and shared by all its sources
(``run_transfer(..., reuse_scratch=True)``). Each pair's results dictionary is written to
``DIR/pairs/<source>-to-<target>/seed<k>.json`` as soon as it is complete; a resumed study skips
those and continues the others from their checkpoints. Seeds run one after another in Python:
``run_transfer(..., seeds=K)`` trains K seeds side by side but keeps only their mean curves and
one set of baselines, while the aggregate here needs each seed's own results.

The aggregate gives, per regime and metric, the mean over seeds and a 95% confidence interval
from the t-distribution with ``n - 1`` degrees of freedom (none with one seed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np

from jaxnas.errors import ConfigError, JaxnasError

if TYPE_CHECKING:  # the command line checks its arguments before importing JAX
    from jaxnas.trainer.config import TrainConfig

PAPER_TASKS = ("class_object", "room_layout", "autoencoder", "segmentsemantic")
TRANSFER_REGIMES = ("zero_shot", "finetune", "retrain")
METRICS = ("normalised_score", "best_valid_mean", "regret", "optimum_rate", "distinct_queries_mean")

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (t_{0.975, df}).
_T975 = (
    12.7062047, 4.30265273, 3.18244631, 2.77644511, 2.57058184, 2.44691185, 2.36462425,
    2.30600414, 2.26215716, 2.22813885, 2.20098516, 2.17881283, 2.16036866, 2.14478669,
    2.13144955, 2.11990530, 2.10981558, 2.10092204, 2.09302405, 2.08596345, 2.07961384,
    2.07387307, 2.06865761, 2.06389856, 2.05953855, 2.05552944, 2.05183052, 2.04840714,
    2.04522964, 2.04227246,
)


def t_quantile_975(df: int) -> float:
    """t_{0.975} with ``df`` degrees of freedom (table up to 30, Cornish-Fisher expansion after,
    accurate to ~1e-6 there)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def mean_ci(values: Sequence[float]) -> dict:
    """Mean and 95% t-interval of ``values`` (``None``s and NaNs dropped). With fewer than two
    values the interval is ``None``."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(vals)
    out = {"n": n, "values": vals, "mean": None, "std": None, "half_width": None, "ci_low": None, "ci_high": None}
    if n == 0:
        return out
    a = np.asarray(vals, np.float64)
    out["mean"] = float(a.mean())
    if n >= 2:
        sd = float(a.std(ddof=1))
        hw = t_quantile_975(n - 1) * sd / math.sqrt(n)
        out.update(std=sd, half_width=hw, ci_low=out["mean"] - hw, ci_high=out["mean"] + hw)
    return out


def intervals_overlap(a: dict, b: dict) -> Optional[bool]:
    """Whether two ``mean_ci`` intervals overlap (``None`` when either has no interval)."""
    if a.get("ci_low") is None or b.get("ci_low") is None:
        return None
    return a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"]


def check_tasks_and_seeds(tasks: Sequence[str], seeds) -> None:
    """The checks that need no data: at least two distinct tasks, at least one seed."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be at least 1, got {seeds!r}")
    tasks = list(tasks)
    if len(tasks) < 2:
        raise ConfigError(
            f"a transfer study needs at least 2 tasks, got {len(tasks)} ({', '.join(tasks) or 'none'})"
        )
    dup = sorted({t for t in tasks if tasks.count(t) > 1})
    if dup:
        raise ConfigError(f"task(s) listed twice: {', '.join(dup)}")


@dataclasses.dataclass(frozen=True)
class StudySpec:
    space: str
    tasks: tuple
    seeds: int
    pretrain_steps: int
    finetune_steps: int
    retrain_steps: int
    config: "TrainConfig"
    preset: Optional[str] = None
    baseline_seeds: int = 256

    @classmethod
    def from_preset(cls, preset: str, *, space: str = "micro", tasks: Sequence[str] = PAPER_TASKS,
                    seeds: int = 1, **overrides) -> "StudySpec":
        from jaxnas.experiments.presets import get_preset

        p = get_preset(preset)
        fields = dict(
            space=space, tasks=tuple(tasks), seeds=seeds, pretrain_steps=p.pretrain_steps,
            finetune_steps=p.finetune_steps, retrain_steps=p.retrain_steps, config=p.config,
            preset=preset,
        )
        fields.update(overrides)
        return cls(**fields)

    def validate(self, table=None) -> "StudySpec":
        """Checks the task list and seeds; with ``table`` also that every task is in it and the
        transfer settings."""
        check_tasks_and_seeds(self.tasks, self.seeds)
        if table is not None:
            unknown = [t for t in self.tasks if t not in table.tasks]
            if unknown:
                raise ConfigError(
                    f"unknown task(s) {', '.join(map(repr, unknown))}; tasks in "
                    f"{table.source or 'the data'}: {', '.join(table.tasks)}"
                )
            self.transfer_spec(self.tasks[0], self.tasks[1], 0).validate(table)
        return self

    def pairs(self) -> list[tuple[str, str]]:
        return [(s, t) for s in self.tasks for t in self.tasks if s != t]

    def transfer_spec(self, source: str, target: str, seed: int):
        from jaxnas.experiments.transfer import TransferSpec

        return TransferSpec(
            space=self.space, source=source, target=target, pretrain_steps=self.pretrain_steps,
            finetune_steps=self.finetune_steps, retrain_steps=self.retrain_steps,
            config=self.config, seed=seed, preset=self.preset, baseline_seeds=self.baseline_seeds,
        )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["tasks"] = list(self.tasks)
        d["config"] = self.config.to_dict()
        return d


def pair_path(out_dir, source: str, target: str, seed: int) -> Path:
    return Path(out_dir) / "pairs" / f"{source}-to-{target}" / f"seed{seed}.json"


def _load_pair(path: Path, expected_config: dict) -> dict:
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not a readable results file ({e}); delete it to run that pair again")
    stored = {k: v for k, v in results.get("config", {}).items() if k != "data"}
    want = json.loads(json.dumps(expected_config))
    if stored != want:
        diff = sorted(k for k in set(stored) | set(want) if stored.get(k) != want.get(k))
        raise ConfigError(
            f"{path} was made with different settings ({', '.join(diff)}); use another --out "
            "for this study or delete that folder"
        )
    return results


def existing_runs(out_dir) -> list[Path]:
    return sorted((Path(out_dir) / "pairs").glob("*-to-*/seed*.json"))


def run_study(
    spec: StudySpec,
    table,
    out_dir,
    *,
    resume: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_update: Optional[Callable[[dict], None]] = None,
) -> dict:
    """Runs (or, with ``resume``, completes) the study in ``out_dir`` and returns the study
    dictionary. ``on_update(study)`` is called with the partial study after every pair run.

    Raises :class:`jaxnas.trainer.phase.Interrupted` after a stop request (every finished pair
    is saved, the running phase checkpointed)."""
    from jaxnas.experiments.io import write_json
    from jaxnas.experiments.transfer import run_transfer
    from jaxnas.trainer.phase import Interrupted

    spec.validate(table)
    out_dir = Path(out_dir)
    if not resume:
        found = existing_runs(out_dir)
        if found:
            raise ConfigError(
                f"{out_dir} already holds {len(found)} pair result(s) of a study; pass --resume "
                "(resume=True) to continue it, or choose another output folder"
            )
    todo = [(seed, s, t) for seed in range(spec.seeds) for s, t in spec.pairs()]
    runs: list[dict] = []
    started = time.perf_counter()
    for i, (seed, source, target) in enumerate(todo, 1):
        tspec = spec.transfer_spec(source, target, seed)
        path = pair_path(out_dir, source, target, seed)
        head = f"[{i}/{len(todo)}] {source} -> {target}, seed {seed}"
        if resume and path.exists():
            results = _load_pair(path, tspec.to_dict())
            log(f"{head}: done before ({path.relative_to(out_dir)}), skipped")
        else:
            if should_stop():
                raise Interrupted(out_dir)
            log(head)
            t0 = time.perf_counter()
            results = run_transfer(
                tspec, table, out_dir, resume=resume, should_stop=should_stop, progress=progress,
                log=lambda m: log("  " + m), reuse_scratch=True,
            )
            results["total_wall_clock_s"] = time.perf_counter() - t0
            write_json(path, results)
            log(f"  done in {results['total_wall_clock_s']:.0f} s -> {path.relative_to(out_dir)}")
        runs.append({"source": source, "target": target, "seed": seed,
                     "file": str(path.relative_to(out_dir)), "results": results})
        if on_update is not None:
            on_update(make_study(spec, runs, table_source=table.source,
                                 invocation_wall_clock_s=time.perf_counter() - started))
    return make_study(spec, runs, table_source=table.source,
                      invocation_wall_clock_s=time.perf_counter() - started)


def make_study(spec: StudySpec, runs: list[dict], *, table_source=None,
               invocation_wall_clock_s: Optional[float] = None) -> dict:
    """The study dictionary (``study.json``) from the pair runs done so far."""
    total = spec.seeds * len(spec.pairs())
    done = {(r["source"], r["target"], r["seed"]) for r in runs}
    missing = [f"{s}->{t} seed {k}" for k in range(spec.seeds) for s, t in spec.pairs() if (s, t, k) not in done]
    return {
        "study": {**spec.to_dict(), "data": table_source},
        "complete": not missing,
        "runs_done": len(runs),
        "runs_total": total,
        "missing": missing,
        # Wall clock of the invocations that finished each pair (compile, evaluation and
        # baselines included; a pair reuses the pretraining / scratch agents trained before it,
        # and time spent before an interruption is not counted).
        "compute_wall_clock_s": float(sum(r["results"].get("total_wall_clock_s") or 0.0 for r in runs)),
        "training_wall_clock_s": training_wall_clock(runs),
        "invocation_wall_clock_s": invocation_wall_clock_s,
        "aggregate": aggregate(spec, runs),
        "runs": runs,
    }


def training_wall_clock(runs: list[dict]) -> float:
    """Seconds spent in training phases, each counted once: pretraining per (source, seed),
    scratch per (target, seed), one transfer run per pair and seed. Phases keep their time over
    interruptions, so this is the study's training time even if it was resumed."""
    pre, scratch, total = {}, {}, 0.0
    for r in runs:
        res = r["results"]
        pre[(r["source"], r["seed"])] = res["pretrain"]["wall_clock_s"] or 0.0
        scratch[(r["target"], r["seed"])] = res["regimes"]["scratch"]["wall_clock_s"] or 0.0
        total += res["regimes"]["retrain"]["wall_clock_s"] or 0.0  # the transfer run, to its end
    return float(total + sum(pre.values()) + sum(scratch.values()))


def spec_from_dict(d: dict) -> StudySpec:
    """The StudySpec recorded in a study.json's ``study`` block."""
    from jaxnas.trainer.config import TrainConfig

    names = {f.name for f in dataclasses.fields(StudySpec)} - {"tasks", "config"}
    return StudySpec(tasks=tuple(d["tasks"]), config=TrainConfig.from_dict(d["config"]),
                     **{k: d[k] for k in names if k in d})


def rebuild_study(study: dict) -> dict:
    """A saved study dictionary with its aggregate computed again (by this version of the code)
    from its runs and recorded settings."""
    return make_study(spec_from_dict(study["study"]), study["runs"], table_source=study["study"].get("data"),
                      invocation_wall_clock_s=study.get("invocation_wall_clock_s"))


def _mean_curve(curves: list[dict]) -> Optional[dict]:
    if not curves:
        return None
    n = min(len(c["env_steps"]) for c in curves)
    steps = curves[0]["env_steps"][:n]
    points = [mean_ci([c["score"][j] for c in curves]) for j in range(n)]
    return {
        "env_steps": list(steps),
        "mean": [p["mean"] for p in points],
        "ci_low": [p["ci_low"] for p in points],
        "ci_high": [p["ci_high"] for p in points],
        "n": len(curves),
    }


def _ttm_stats(values: list) -> dict:
    matched = [v for v in values if v is not None]
    return {
        "values": list(values),
        "n": len(values),
        "matched": len(matched),
        "mean_matched": float(np.mean(matched)) if matched else None,
    }


def _regime_stats(regs: list[dict], baselines: list[dict], name: str, deltas=None) -> dict:
    out = {
        "final": {m: mean_ci([r["final"][m] for r in regs]) for m in METRICS},
        "time_to_match": _ttm_stats([r["time_to_match"] for r in regs]),
        # The learning curve's mean over its evaluation points: the normalised area under it, a
        # measure of how fast the agent got good (retrain and scratch share one evaluation grid).
        "curve_mean": mean_ci([float(np.mean(r["curve"]["score"])) for r in regs]),
        "baselines": {
            algo: {
                "queries": mean_ci([b["algorithms"][algo]["at_regime_queries"][name]["queries"] for b in baselines]),
                "normalised_score": mean_ci(
                    [b["algorithms"][algo]["at_regime_queries"][name]["normalised_score"] for b in baselines]
                ),
            }
            for algo in (baselines[0]["algorithms"] if baselines else {})
        },
    }
    if deltas is not None:
        out["delta_vs_scratch"] = mean_ci(deltas)
    return out


def _gain(regimes: dict, scratch: dict) -> dict:
    """The study's rule: a pair gains from pretraining if the mean final score of retrain, or of
    fine-tune, exceeds the scratch agent's."""
    s = scratch["final"]["normalised_score"]
    out = {"rule": "retrain or fine-tune mean final normalised score > scratch mean", "by_regime": {}}
    for name in ("retrain", "finetune"):
        r = regimes[name]["final"]["normalised_score"]
        out["by_regime"][name] = {
            "mean": r["mean"],
            "difference": r["mean"] - s["mean"],
            "gains": r["mean"] > s["mean"],
            "ci_overlap": intervals_overlap(r, s),
            "paired_difference": regimes[name]["delta_vs_scratch"],
        }
    gaining = [n for n, g in out["by_regime"].items() if g["gains"]]
    out["gains"] = bool(gaining)
    out["gaining_regimes"] = gaining
    return out


def aggregate(spec: StudySpec, runs: list[dict]) -> dict:
    """Means and 95% t-intervals over seeds of every regime and metric, per pair and target."""
    by_pair: dict = {}
    scratch_by_target: dict = {}
    for r in sorted(runs, key=lambda r: r["seed"]):
        res = r["results"]
        by_pair.setdefault((r["source"], r["target"]), []).append(r)
        # The scratch agent of a (target, seed) is shared by every source; keep one per seed.
        scratch_by_target.setdefault(r["target"], {}).setdefault(r["seed"], res)

    targets = {}
    for target in spec.tasks:
        per_seed = scratch_by_target.get(target)
        if not per_seed:
            continue
        results = [per_seed[k] for k in sorted(per_seed)]
        targets[target] = {
            "seeds": sorted(per_seed),
            "scratch": _regime_stats([r["regimes"]["scratch"] for r in results],
                                     [r["baselines"] for r in results], "scratch"),
            "scratch_curve": _mean_curve([r["regimes"]["scratch"]["curve"] for r in results]),
            "random_walk": {m: mean_ci([r["random_walk"][m] for r in results]) for m in METRICS},
            "global_best_valid": results[0]["global_best_valid"],
            "global_worst_valid": results[0]["global_worst_valid"],
        }

    pairs: dict = {}
    for (source, target), rs in by_pair.items():
        results = [r["results"] for r in rs]
        scratch_of = scratch_by_target[target]
        regimes = {}
        for name in TRANSFER_REGIMES:
            deltas = [
                res["regimes"][name]["final"]["normalised_score"]
                - scratch_of[r["seed"]]["regimes"]["scratch"]["final"]["normalised_score"]
                for r, res in zip(rs, results)
            ]
            regimes[name] = _regime_stats([res["regimes"][name] for res in results],
                                          [res["baselines"] for res in results], name, deltas)
        pairs.setdefault(source, {})[target] = {
            "seeds": [r["seed"] for r in rs],
            "regimes": regimes,
            # Fine-tune is the first part of this curve and zero-shot its first point.
            "transfer_curve": _mean_curve([res["regimes"]["retrain"]["curve"] for res in results]),
            "pretrain_final": mean_ci([res["pretrain"]["final"]["normalised_score"] for res in results]),
            "gain": _gain(regimes, targets[target]["scratch"]),
        }
    return {"targets": targets, "pairs": pairs, "confidence": 0.95, "interval": "t-distribution, n-1 df, over seeds"}


# --------------------------------------------------------------------------- command line

DESCRIPTION = """\
The transfer study: pretrain on each task, transfer to each other task (zero-shot, fine-tune,
retrain) against a scratch agent per target, over K seeds. Writes DIR/study.json, DIR/report.md,
DIR/heatmap.png and DIR/curves_grid.png; per-pair results go to DIR/pairs/. Interrupt with
Ctrl-C (or SIGTERM) and continue with the same command plus --resume.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="experiments/study.py", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="micro", choices=["micro", "macro"], help="search space (default: micro)")
    p.add_argument("--tasks", default=",".join(PAPER_TASKS),
                   help=f"comma-separated tasks, at least 2 (default: {','.join(PAPER_TASKS)})")
    p.add_argument("--seeds", type=int, default=1, metavar="K", help="seeds 0..K-1 per pair (default: 1)")
    # Preset names are checked by get_preset, so that a bad flag fails without importing JAX.
    p.add_argument("--preset", default="quick",
                   help="budgets and settings from jaxnas/experiments/presets.py: paper (10M / 1M / 10M "
                        "env steps, hours on a CPU), quick (minutes per pair on a CPU) or tiny (seconds; "
                        "tests and CI only) (default: quick)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="CSV file/folder or the official transnas-bench_v10141024.pth (default: "
                        "$JAXNAS_DATA, then ../shared/data/transnas-bench-101, then ./data)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: runs/study-<space>-<preset>)")
    p.add_argument("--pretrain-steps", type=int, default=None, metavar="N", help="env steps of pretraining on each source (overrides the preset)")
    p.add_argument("--finetune-steps", type=int, default=None, metavar="N", help="env steps of fine-tuning on the target (overrides the preset)")
    p.add_argument("--retrain-steps", type=int, default=None, metavar="N", help="env steps of retraining on the target, also the scratch agent's budget (overrides the preset)")
    p.add_argument("--resume", action="store_true",
                   help="continue a study in --out: skip finished pairs, resume the others from checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: recompute the aggregate, report and figures from DIR/study.json "
                        "(with the settings recorded there)")
    return p


def parse_tasks(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)  # argparse exits with 2 on malformed flags
    try:
        return _run(args)
    except JaxnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _report_only(args) -> int:
    from jaxnas.experiments.report import write_outputs

    if not args.out:
        raise ConfigError("--report-only needs --out DIR, the folder of a study")
    path = Path(args.out) / "study.json"
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; run the study first (without --report-only)")
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON ({e})")
    paths = write_outputs(rebuild_study(saved), args.out)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _run(args) -> int:
    if args.report_only:
        return _report_only(args)
    # Checks that need no data first, so a typo fails before JAX is imported.
    tasks = parse_tasks(args.tasks)
    check_tasks_and_seeds(tasks, args.seeds)
    overrides = {}
    for name in ("pretrain_steps", "finetune_steps", "retrain_steps"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number of env steps, got {value}")
            overrides[name] = value
    spec = StudySpec.from_preset(args.preset, space=args.space, tasks=tasks, seeds=args.seeds, **overrides)

    from jaxnas.data import load_table
    from jaxnas.experiments.report import write_outputs
    from jaxnas.experiments.signals import StopRequest
    from jaxnas.trainer.phase import Interrupted

    table = load_table(args.space, args.data)
    spec.validate(table)
    out = Path(args.out or f"runs/study-{args.space}-{args.preset}")
    n = len(spec.pairs())
    print(f"data: {table.source}\noutput: {out}\n{n} pairs x {spec.seeds} seed(s) = {n * spec.seeds} "
          f"transfer runs; preset {args.preset}: pretrain {spec.pretrain_steps:,}, fine-tune "
          f"{spec.finetune_steps:,}, retrain/scratch {spec.retrain_steps:,} env steps", flush=True)
    start = time.perf_counter()
    with StopRequest() as stop:
        try:
            study = run_study(spec, table, out, resume=args.resume, should_stop=stop,
                              progress=not args.no_progress,
                              log=lambda m: print(m, flush=True),
                              on_update=lambda st: write_outputs(st, out))
        except Interrupted as e:
            print(f"{e}\nfinished pairs are in {out / 'pairs'}; continue with the same command plus --resume",
                  file=sys.stderr)
            return stop.exit_code or 130
    write_outputs(study, out)
    print(f"\nwrote {out / 'study.json'}, {out / 'report.md'}, {out / 'heatmap.png'} and "
          f"{out / 'curves_grid.png'} ({time.perf_counter() - start:.0f} s this run, "
          f"{study['compute_wall_clock_s']:.0f} s of pair runs in all)")
    return 0
