"""The transfer experiment on several devices (one agent, data-parallel) or for several seeds
at once (K agents, vmapped on one device).

Same phases, keys and results schema as :func:`jaxnas.experiments.transfer.run_transfer`, which
dispatches here when ``devices > 1`` or ``seeds > 1``:

- ``devices = D``: one agent whose iterations run on D devices (``jaxnas.trainer.distributed``);
  the step budgets count the steps of all devices together. ``results["config"]["devices"]``
  records D.
- ``seeds = K``: seeds ``spec.seed .. spec.seed + K - 1``, each with the keys a single-seed run
  of that seed uses, trained side by side (``jaxnas.trainer.seeds``). The usual fields hold the
  mean over seeds (curves: the mean curve; ``time_to_match``: of the mean curve against the mean
  scratch score; ``wall_clock_s``: of all seeds together), and ``results["seeds"][regime][metric]``
  holds ``mean``, ``ci95_low``, ``ci95_high`` (Student-t, K - 1 degrees of freedom) and the
  per-seed ``values`` of every final number. Baselines are computed once, at the mean query
  budgets, with the first seed's key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.data.table import BenchmarkTable
from jaxnas.errors import ConfigError
from jaxnas.experiments import transfer as T
from jaxnas.spaces.space import make_space
from jaxnas.trainer import distributed as dist
from jaxnas.trainer import seeds as seeds_lib
from jaxnas.trainer.agent import make_agent
from jaxnas.trainer.evaluate import evaluate

KEY_NAMES = ["pretrain", "transfer", "scratch", "eval_source", "eval_target", "baselines"]


def transfer_keys(seed: int) -> dict:
    """The keys ``run_transfer`` derives from ``seed``."""
    root = jax.random.PRNGKey(seed)
    return {name: jax.random.fold_in(root, i) for i, name in enumerate(KEY_NAMES)}


def _run_or_reuse(run, ckpt_dir: Path, resume: bool, reuse_complete: bool):
    import shutil

    done = ckpt_dir / "DONE"
    reused = reuse_complete and done.exists()
    if not resume and not reused and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    result = run(checkpoint_dir=ckpt_dir, resume=resume or reused)
    done.write_text("complete\n")
    return result, reused


def _numeric(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _mean_dict(dicts: list[dict]) -> dict:
    out = {}
    for k, v in dicts[0].items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            out[k] = v
        elif isinstance(v, int) and all(d[k] == v for d in dicts):
            out[k] = v
        else:
            out[k] = float(np.mean([d[k] for d in dicts]))
    return out


def _mean_regime(regs: list[dict]) -> dict:
    first = regs[0]
    return {
        "final": _mean_dict([r["final"] for r in regs]),
        "curve": {
            "env_steps": list(first["curve"]["env_steps"]),
            "score": [float(x) for x in np.mean([r["curve"]["score"] for r in regs], axis=0)],
        },
        "wall_clock_s": first["wall_clock_s"],
        "env_steps_per_s": first["env_steps_per_s"],
        "env_steps": first["env_steps"],
    }


def seeds_block(per_seed_regimes: list[dict]) -> dict:
    """``{regime: {metric: mean_ci95 over seeds}}`` of every numeric final number."""
    out = {}
    for name in T.REGIMES:
        finals = [r[name]["final"] for r in per_seed_regimes]
        out[name] = {
            metric: seeds_lib.mean_ci95([f[metric] for f in finals])
            for metric in _numeric(finals[0])
            if metric != "episodes"
        }
    return out


def run_transfer_multi(
    spec,
    table: BenchmarkTable,
    out_dir,
    *,
    devices: int = 1,
    seeds: int = 1,
    resume: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    reuse_scratch: bool = False,
) -> dict:
    if devices < 1 or seeds < 1:
        raise ConfigError(f"devices and seeds must be at least 1, got devices={devices}, seeds={seeds}")
    if devices > 1 and seeds > 1:
        raise ConfigError("--devices > 1 together with --seeds > 1 is not supported; choose one of them")
    spec.validate(table)
    out_dir = Path(out_dir)
    cfg = spec.config
    space = make_space(table)
    source_env = T._env(table, spec.source, cfg, space)
    target_env = T._env(table, spec.target, cfg, space)
    agent = make_agent(cfg, source_env)
    seed_list = [spec.seed + i for i in range(seeds)]
    per_seed_keys = [transfer_keys(s) for s in seed_list]
    keys = {name: jnp.stack([k[name] for k in per_seed_keys]) for name in KEY_NAMES}
    mode = ("devices", devices) if devices > 1 else ("seeds", seeds)

    data_id = T._digest(np.asarray(table.valid).tobytes(), list(table.tasks), table.space)
    pre_digest = T._digest(cfg.to_dict(), spec.source, spec.seed, spec.pretrain_steps, data_id, list(mode))
    tgt_digest = T._digest(pre_digest, spec.target, spec.finetune_steps, spec.retrain_steps)
    scratch_digest = T._digest(
        cfg.to_dict(), spec.target, spec.seed, spec.retrain_steps, data_id, "scratch", list(mode)
    )

    if devices > 1:
        mesh = dist.make_mesh(devices)
        log(f"data-parallel over {devices} devices ({mesh.devices.flat[0].platform}); budgets count all devices' steps")

        def init(env, k):
            return dist.init_sharded_state(agent, env, k[0], mesh)

        def reset(env, learner, k):
            return dist.shard_for_task(agent, env, dist.replica(learner, dist.local_replica_index(learner)), k[0], mesh)

        def phase(name, env, state, steps, eval_keys):
            def run(**kw):
                return dist.run_sharded_phase(
                    agent, env, state, steps, eval_keys[0], mesh, name=name,
                    should_stop=should_stop, progress=progress, **kw,
                )
            return run

        def members(result):
            return [result]

        def params_of(result, i):
            return dist.replica_params(result.state)
    else:
        log(f"{seeds} seeds ({seed_list[0]}..{seed_list[-1]}) trained together, vmapped")

        def init(env, k):
            return seeds_lib.init_seeds_state(agent, env, k)

        def reset(env, learner, k):
            return seeds_lib.reset_seeds_for_task(agent, env, learner, k)

        def phase(name, env, state, steps, eval_keys):
            def run(**kw):
                return seeds_lib.run_seeds_phase(
                    agent, env, state, steps, eval_keys, name=name, should_stop=should_stop,
                    progress=progress, **kw,
                )
            return run

        def members(result):
            return [result.member(i) for i in range(result.num_members)]

        def params_of(result, i):
            return seeds_lib.take(result.state.learner.params, i)

    log(f"pretraining on {spec.source} ({spec.space}, {spec.pretrain_steps:,} env steps)")
    pretrain, reused = _run_or_reuse(
        phase(f"pretrain {spec.source}", source_env, init(source_env, keys["pretrain"]),
              spec.pretrain_steps, keys["eval_source"]),
        T._phase_dir(out_dir, f"pretrain-{spec.source}", pre_digest), resume, reuse_complete=True,
    )
    if reused:
        log("  reused the completed pretraining checkpoint with the same configuration")
    transfer_steps = max(spec.finetune_steps, spec.retrain_steps)
    log(f"transfer to {spec.target}: fine-tune {spec.finetune_steps:,} / retrain {spec.retrain_steps:,} env steps")
    transfer, _ = _run_or_reuse(
        phase(f"transfer {spec.source}->{spec.target}", target_env,
              reset(target_env, pretrain.state.learner, keys["transfer"]), transfer_steps, keys["eval_target"]),
        T._phase_dir(out_dir, f"transfer-{spec.source}-{spec.target}", tgt_digest), resume, reuse_complete=False,
    )
    log(f"training from scratch on {spec.target} ({spec.retrain_steps:,} env steps)")
    scratch, scratch_reused = _run_or_reuse(
        phase(f"scratch {spec.target}", target_env, init(target_env, keys["scratch"]),
              spec.retrain_steps, keys["eval_target"]),
        T._phase_dir(out_dir, f"scratch-{spec.target}", scratch_digest), resume, reuse_complete=reuse_scratch,
    )
    if scratch_reused:
        log("  reused the completed scratch agent with the same configuration")

    pre_m, tr_m, sc_m = members(pretrain), members(transfer), members(scratch)
    per_seed = [T.regimes_of(spec, t, s) for t, s in zip(tr_m, sc_m)]
    # epsilon = 1: the parameters are not used, only the key.
    random_walks = [
        evaluate(agent.apply_fn, params_of(pretrain, i), target_env, k["eval_target"], cfg.eval_episodes, epsilon=1.0)
        for i, k in enumerate(per_seed_keys)
    ]
    pretrain_blocks = [{**T._regime(p), "task": spec.source, "reused_checkpoint": reused} for p in pre_m]

    if len(per_seed) == 1:
        regimes, random_walk, pretrain_block = per_seed[0], random_walks[0], pretrain_blocks[0]
    else:
        regimes = {name: _mean_regime([r[name] for r in per_seed]) for name in T.REGIMES}
        regimes["zero_shot"]["wall_clock_s"] = 0.0
        regimes["zero_shot"]["env_steps_per_s"] = None
        regimes = T.add_time_to_match(regimes)
        random_walk = _mean_dict(random_walks)
        pretrain_block = {**_mean_regime(pretrain_blocks), "task": spec.source, "reused_checkpoint": reused}

    results = T.results_dict(
        spec, table, target_env, regimes, random_walk, pretrain_block, per_seed_keys[0]["baselines"]
    )
    if devices > 1:
        results["config"]["devices"] = devices
    if seeds > 1:
        results["config"]["seeds"] = seeds
        results["seed_values"] = seed_list
        results["seeds"] = seeds_block(per_seed)
    return results


def seeds_table(results: dict) -> str:
    """Mean and 95% interval over seeds of each regime's score and best validation metric."""
    block = results["seeds"]
    k = len(results["seed_values"])
    rows = [("regime", "score mean", "95% interval", "best valid mean", "95% interval")]
    for name in T.REGIMES:
        s, v = block[name]["normalised_score"], block[name]["best_valid_mean"]
        rows.append((
            name, f"{s['mean']:.4f}", f"[{s['ci95_low']:.4f}, {s['ci95_high']:.4f}]",
            f"{v['mean']:.4f}", f"[{v['ci95_low']:.4f}, {v['ci95_high']:.4f}]",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return f"over {k} seeds {results['seed_values']} (Student-t 95% interval of the mean)\n" + "\n".join(lines)
