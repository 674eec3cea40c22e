#!/usr/bin/env python
"""The small experiment behind the default reward mode, normalisation, horizon, network size and
replay ratio (README, "Defaults by evidence").

One factor at a time around the defaults, several seeds, on the real micro table. Each setting
trains for --steps env steps on --task; the score is the greedy agent's normalised best found
minus that of the epsilon = 1 random walk at the same horizon (so longer horizons are not
rewarded just for querying more).

    python experiments/defaults_study.py --steps 60000 --seeds 3 --out results/defaults
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jaxnas.data import load_table
from jaxnas.env import make_env
from jaxnas.errors import JaxnasError
from jaxnas.experiments.io import write_json
from jaxnas.experiments.presets import get_preset
from jaxnas.trainer.agent import make_agent
from jaxnas.trainer.evaluate import evaluate
from jaxnas.trainer.loop import init_train_state
from jaxnas.trainer.phase import run_phase

VARIANTS = {
    "default": {},
    "reward=improvement": {"reward_mode": "improvement"},
    "reward=delta": {"reward_mode": "delta"},
    "normalisation=rank": {"normalisation": "rank"},
    "horizon=10": {"horizon": 10},
    "horizon=50": {"horizon": 50},
    "network=small": {"d_model": 32, "num_layers": 1, "num_heads": 2, "mlp_dim": 64},
    "replay_ratio=1": {"act_steps": 4},
    "replay_ratio=8": {"updates_per_iteration": 2},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="micro", choices=["micro", "macro"])
    p.add_argument("--task", default="class_object")
    p.add_argument("--steps", type=int, default=60_000, help="env steps per run")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    p.add_argument("--data", default=None)
    p.add_argument("--out", default="results/defaults")
    args = p.parse_args(argv)
    try:
        names = args.variants.split(",")
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            raise JaxnasError(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
        table = load_table(args.space, args.data, tasks=[args.task])
    except JaxnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    base = get_preset("quick").config.replace(eval_every=args.steps // 4, eval_episodes=1024)
    rows = {}
    for name in names:
        cfg = base.replace(**VARIANTS[name])
        env = make_env(table, args.task, horizon=cfg.horizon, reward_mode=cfg.reward_mode, normalisation=cfg.normalisation)
        agent = make_agent(cfg, env)
        scores, gains, t0 = [], [], time.perf_counter()
        for seed in range(args.seeds):
            state = init_train_state(agent, env, jax.random.PRNGKey(seed))
            eval_key = jax.random.PRNGKey(10_000 + seed)
            res = run_phase(agent, env, state, args.steps, eval_key, name=f"{name} seed {seed}", progress=False)
            walk = evaluate(agent.apply_fn, res.state.learner.params, env, eval_key, cfg.eval_episodes, epsilon=1.0)
            scores.append(res.final["normalised_score"])
            gains.append(res.final["normalised_score"] - walk["normalised_score"])
        rows[name] = {
            "changes": VARIANTS[name], "score": scores, "gain_over_random_walk": gains,
            "gain_mean": float(np.mean(gains)), "gain_sem": float(np.std(gains, ddof=1) / np.sqrt(len(gains))) if len(gains) > 1 else None,
            "wall_clock_s": time.perf_counter() - t0,
        }
        print(f"{name:22s} gain {np.mean(gains):+.4f}  score {np.mean(scores):.4f}  ({rows[name]['wall_clock_s']:.0f} s)", flush=True)
    out = Path(args.out)
    write_json(out / "defaults.json", {"space": args.space, "task": args.task, "steps": args.steps,
                                       "seeds": args.seeds, "base_config": base.to_dict(), "variants": rows})
    lines = ["| variant | gain over random walk (mean ± sem) | normalised score |", "| --- | --- | --- |"]
    for name, r in rows.items():
        sem = f" ± {r['gain_sem']:.4f}" if r["gain_sem"] is not None else ""
        lines.append(f"| {name} | {r['gain_mean']:+.4f}{sem} | {np.mean(r['score']):.4f} |")
    (out / "defaults.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
