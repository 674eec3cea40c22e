"""The transfer experiment: pretrain on a source task, then zero-shot, fine-tune and retrain on
the target task, against an agent trained from scratch on the target.

Fine-tune and retrain are the same algorithm from the same pretrained agent with different
budgets, so they share one run on the target: fine-tune is that run after ``finetune_steps``
(an evaluation point), retrain the same run after ``retrain_steps``. Zero-shot is the pretrained
agent evaluated on the target without further training (the first point of that run's curve).
On the target the agent keeps its parameters, target parameters and optimiser state, and starts
a fresh replay buffer (source transitions carry source rewards) and fresh actor episodes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Callable, Optional

import jax
import numpy as np

from jaxnas import baselines as baselines_lib
from jaxnas.data.table import BenchmarkTable
from jaxnas.env.nas_env import NASEnv, make_env
from jaxnas.errors import ConfigError
from jaxnas.spaces.space import make_space
from jaxnas.trainer.agent import make_agent
from jaxnas.trainer.config import TrainConfig
from jaxnas.trainer.evaluate import evaluate
from jaxnas.trainer.loop import init_train_state, reset_for_task
from jaxnas.trainer.phase import PhaseResult, run_phase

REGIMES = ("scratch", "zero_shot", "finetune", "retrain")
BASELINE_ALGOS = ("random_search", "local_search", "evolution")


@dataclasses.dataclass(frozen=True)
class TransferSpec:
    space: str
    source: str
    target: str
    pretrain_steps: int
    finetune_steps: int
    retrain_steps: int
    config: TrainConfig
    seed: int = 0
    preset: Optional[str] = None
    baseline_seeds: int = 256

    def validate(self, table: BenchmarkTable) -> "TransferSpec":
        for role, task in (("source", self.source), ("target", self.target)):
            if task not in table.tasks:
                raise ConfigError(
                    f"unknown {role} task {task!r}; tasks in {table.source or 'the data'}: "
                    f"{', '.join(table.tasks)}"
                )
        if self.source == self.target:
            raise ConfigError(
                f"source and target are both {self.source!r}; transfer needs two different tasks"
            )
        for name in ("pretrain_steps", "finetune_steps", "retrain_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.baseline_seeds < 1:
            raise ConfigError(f"baseline_seeds must be at least 1, got {self.baseline_seeds}")
        self.config.validate()
        return self

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["config"] = self.config.to_dict()
        return d


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _env(table: BenchmarkTable, task: str, config: TrainConfig, space) -> NASEnv:
    return make_env(
        table, task, horizon=config.horizon, reward_mode=config.reward_mode,
        normalisation=config.normalisation, space=space,
    )


def _curve(result: PhaseResult) -> dict:
    return {"env_steps": list(result.curve_env_steps), "score": list(result.curve_scores)}


def time_to_match(curve: dict, score: float) -> Optional[int]:
    """First env step count at which ``curve`` reaches ``score`` (None if it never does)."""
    for steps, s in zip(curve["env_steps"], curve["score"]):
        if s >= score - 1e-12:
            return int(steps)
    return None


def _regime(result: PhaseResult) -> dict:
    return {
        "final": dict(result.final),
        "curve": _curve(result),
        "wall_clock_s": result.wall_clock_s,
        "env_steps_per_s": result.env_steps_per_s,
        "env_steps": result.env_steps,
    }


def _phase_dir(out_dir: Path, name: str, digest: str) -> Path:
    return out_dir / "checkpoints" / f"{name}-{digest}"


def _run_or_reuse(
    name, agent, env, start_state, steps, eval_key, ckpt_dir: Path, resume, should_stop, progress,
    reuse_complete: bool,
) -> tuple[PhaseResult, bool]:
    done = ckpt_dir / "DONE"
    reused = reuse_complete and done.exists()
    if not resume and not reused and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)  # a stale run of this phase: start it again
    result = run_phase(
        agent, env, start_state, steps, eval_key, name=name, checkpoint_dir=ckpt_dir,
        resume=resume or reused, should_stop=should_stop, progress=progress,
    )
    done.write_text("complete\n")
    return result, reused


def run_transfer(
    spec: TransferSpec,
    table: BenchmarkTable,
    out_dir,
    *,
    resume: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    reuse_scratch: bool = False,
    devices: int = 1,
    seeds: int = 1,
) -> dict:
    """Runs every phase (reusing a completed pretraining of the same configuration) and returns
    the results dictionary written to ``results.json``.

    ``reuse_scratch=True`` also reuses a completed scratch agent of the same configuration, target
    and seed in ``out_dir`` (it does not depend on the source, so a study that transfers several
    sources to one target trains it once); by default the scratch agent is trained again."""
    if devices != 1 or seeds != 1:
        # ``devices`` > 1: one agent, data-parallel; ``seeds`` > 1: K agents vmapped. Same
        # phases and schema, plus a ``seeds`` block (see jaxnas.experiments.transfer_multi).
        from jaxnas.experiments.transfer_multi import run_transfer_multi

        return run_transfer_multi(
            spec, table, out_dir, devices=devices, seeds=seeds, resume=resume,
            should_stop=should_stop, progress=progress, log=log, reuse_scratch=reuse_scratch,
        )
    spec.validate(table)
    out_dir = Path(out_dir)
    cfg = spec.config
    space = make_space(table)
    source_env = _env(table, spec.source, cfg, space)
    target_env = _env(table, spec.target, cfg, space)
    agent = make_agent(cfg, source_env)
    root = jax.random.PRNGKey(spec.seed)
    keys = {name: jax.random.fold_in(root, i) for i, name in enumerate(["pretrain", "transfer", "scratch", "eval_source", "eval_target", "baselines"])}

    data_id = _digest(np.asarray(table.valid).tobytes(), list(table.tasks), table.space)
    pre_digest = _digest(cfg.to_dict(), spec.source, spec.seed, spec.pretrain_steps, data_id)
    tgt_digest = _digest(pre_digest, spec.target, spec.finetune_steps, spec.retrain_steps)

    log(f"pretraining on {spec.source} ({spec.space}, {spec.pretrain_steps:,} env steps)")
    pretrain, reused = _run_or_reuse(
        f"pretrain {spec.source}", agent, source_env,
        init_train_state(agent, source_env, keys["pretrain"]), spec.pretrain_steps,
        keys["eval_source"], _phase_dir(out_dir, f"pretrain-{spec.source}", pre_digest),
        resume, should_stop, progress, reuse_complete=True,
    )
    if reused:
        log("  reused the completed pretraining checkpoint with the same configuration")

    transfer_steps = max(spec.finetune_steps, spec.retrain_steps)
    log(f"transfer to {spec.target}: fine-tune {spec.finetune_steps:,} / retrain {spec.retrain_steps:,} env steps")
    transfer_start = reset_for_task(agent, target_env, pretrain.state.learner, keys["transfer"])
    transfer, _ = _run_or_reuse(
        f"transfer {spec.source}->{spec.target}", agent, target_env, transfer_start, transfer_steps,
        keys["eval_target"], _phase_dir(out_dir, f"transfer-{spec.source}-{spec.target}", tgt_digest),
        resume, should_stop, progress, reuse_complete=False,
    )
    log(f"training from scratch on {spec.target} ({spec.retrain_steps:,} env steps)")
    scratch_digest = _digest(cfg.to_dict(), spec.target, spec.seed, spec.retrain_steps, data_id, "scratch")
    scratch, scratch_reused = _run_or_reuse(
        f"scratch {spec.target}", agent, target_env,
        init_train_state(agent, target_env, keys["scratch"]), spec.retrain_steps,
        keys["eval_target"], _phase_dir(out_dir, f"scratch-{spec.target}", scratch_digest),
        resume, should_stop, progress, reuse_complete=reuse_scratch,
    )
    if scratch_reused:
        log("  reused the completed scratch agent with the same configuration")

    regimes = regimes_of(spec, transfer, scratch)
    random_walk = evaluate(
        agent.apply_fn, pretrain.state.learner.params, target_env, keys["eval_target"],
        cfg.eval_episodes, epsilon=1.0,
    )
    pretrain_block = {**_regime(pretrain), "task": spec.source, "reused_checkpoint": reused}
    return results_dict(spec, table, target_env, regimes, random_walk, pretrain_block, keys["baselines"])


def regimes_of(spec: TransferSpec, transfer: PhaseResult, scratch: PhaseResult) -> dict:
    """The ``regimes`` block of one agent: zero-shot is the transfer run's first evaluation,
    fine-tune and retrain its prefixes."""
    regimes = {
        "scratch": _regime(scratch),
        "zero_shot": _regime(transfer.prefix(0)),
        "finetune": _regime(transfer.prefix(spec.finetune_steps)),
        "retrain": _regime(transfer.prefix(spec.retrain_steps)),
    }
    regimes["zero_shot"]["wall_clock_s"] = 0.0
    regimes["zero_shot"]["env_steps_per_s"] = None
    return add_time_to_match(regimes)


def add_time_to_match(regimes: dict) -> dict:
    scratch_final = regimes["scratch"]["final"]["normalised_score"]
    for r in regimes.values():
        r["time_to_match"] = time_to_match(r["curve"], scratch_final)
    return regimes


def results_dict(
    spec: TransferSpec, table: BenchmarkTable, target_env: NASEnv, regimes: dict,
    random_walk: dict, pretrain_block: dict, baselines_key,
) -> dict:
    """The ``results.json`` dictionary (schema in the README); the one place that builds it."""
    baselines = baseline_reference(target_env, regimes, spec.baseline_seeds, baselines_key)
    valid = np.asarray(target_env.valid)
    return {
        "config": {**spec.to_dict(), "data": table.source},
        "space": spec.space,
        "source": spec.source,
        "target": spec.target,
        "global_best_valid": float(valid.max()),
        "global_worst_valid": float(valid.min()),
        "regimes": regimes,
        "baselines": baselines,
        "random_walk": random_walk,
        "pretrain": pretrain_block,
    }


def baseline_reference(env: NASEnv, regimes: dict, num_seeds: int, key) -> dict:
    """Baseline searches on the target at the agents' query budgets.

    For each baseline: its curve up to the largest budget any regime used, and its normalised
    score at each regime's mean number of distinct queries (rounded).
    """
    valid = np.asarray(env.valid, np.float64)
    best, worst = valid.max(), valid.min()
    budgets = {name: max(1, int(round(r["final"]["distinct_queries_mean"]))) for name, r in regimes.items()}
    max_q = min(max(budgets.values()), valid.size)
    out = {"seeds": num_seeds, "queries_per_regime": budgets, "algorithms": {}}
    for i, algo in enumerate(BASELINE_ALGOS):
        res = baselines_lib.run_many(
            algo, jax.random.fold_in(key, i), env.space.neighbours, env.valid, max_q, num_seeds
        )
        found = np.asarray(res.best_so_far, np.float64)  # [S, Q]
        norm = ((found - worst) / (best - worst)).mean(axis=0) if best > worst else np.zeros(max_q)
        out["algorithms"][algo] = {
            "queries": list(range(1, max_q + 1)),
            "best_valid_mean": found.mean(axis=0).tolist(),
            "normalised_score": norm.tolist(),
            "at_regime_queries": {
                name: {"queries": min(q, max_q), "normalised_score": float(norm[min(q, max_q) - 1]),
                       "best_valid_mean": float(found.mean(axis=0)[min(q, max_q) - 1])}
                for name, q in budgets.items()
            },
        }
    return out


def summary_table(results: dict) -> str:
    """A fixed-width text table of the regimes' final numbers."""
    rows = [("regime", "best valid", "score", "regret", "optimum", "queries", "to match", "steps/s")]
    for name in REGIMES:
        r = results["regimes"][name]
        f = r["final"]
        ttm = r["time_to_match"]
        sps = r["env_steps_per_s"]
        rows.append((
            name, f"{f['best_valid_mean']:.4f}", f"{f['normalised_score']:.4f}", f"{f['regret']:.4f}",
            f"{f['optimum_rate']:.3f}", f"{f['distinct_queries_mean']:.1f}",
            "-" if ttm is None else f"{ttm:,}", "-" if not sps else f"{sps:,.0f}",
        ))
    q = results["baselines"]["queries_per_regime"]["scratch"]
    for algo, b in results["baselines"]["algorithms"].items():
        at = b["at_regime_queries"]["scratch"]
        rows.append((f"{algo} @{q}q", f"{at['best_valid_mean']:.4f}", f"{at['normalised_score']:.4f}",
                     f"{results['global_best_valid'] - at['best_valid_mean']:.4f}", "", f"{at['queries']}", "", ""))
    rw = results["random_walk"]
    rows.append(("random walk (eps=1)", f"{rw['best_valid_mean']:.4f}", f"{rw['normalised_score']:.4f}",
                 f"{rw['regret']:.4f}", f"{rw['optimum_rate']:.3f}", f"{rw['distinct_queries_mean']:.1f}", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    title = (f"{results['space']}: {results['source']} -> {results['target']}  "
             f"(global best valid {results['global_best_valid']:.4f}; score = normalised best found)")
    return title + "\n" + "\n".join(lines)
