"""Baseline study: every classic search baseline on one task, many seeds, one JSON and one plot.

Used by ``experiments/baselines.py``; everything here is reusable from notebooks:

- :func:`baseline_study` runs the baselines on a table's task and returns the report dict
  (the JSON written by the command line);
- :func:`plot_baselines` draws the report's curves.
"""

from __future__ import annotations

import numbers
import zlib
from pathlib import Path
from typing import Optional, Sequence

import jax
import numpy as np

from jaxnas import baselines as baselines_lib
from jaxnas.baselines.common import BaselineConfigError, check_inputs
from jaxnas.errors import ConfigError

ALGORITHM_NAMES = tuple(baselines_lib.ALGORITHMS)
BANDS = ("std", "sem")


def parse_algorithms(text: str) -> list[str]:
    """``"random_search,evolution"`` -> names, in order, without duplicates; checks each."""
    names = []
    for part in str(text).split(","):
        name = part.strip()
        if not name:
            continue
        if name not in baselines_lib.ALGORITHMS:
            raise ConfigError(
                f"unknown algorithm {name!r} in --algo; choose from {', '.join(ALGORITHM_NAMES)} "
                f"(comma-separated)"
            )
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigError(f"--algo names no algorithm; choose from {', '.join(ALGORITHM_NAMES)}")
    return names


def algorithm_key(key, algo: str):
    """The key of one algorithm: depends on its name only, so a curve does not change when
    other algorithms are added to or removed from a study."""
    return jax.random.fold_in(key, zlib.crc32(algo.encode()) & 0x7FFFFFFF)


def baseline_study(
    values,
    neighbours,
    *,
    algorithms: Sequence[str],
    num_queries: int,
    num_seeds: int,
    seed: int = 0,
    hyperparameters: Optional[dict] = None,
    space: str = "",
    task: str = "",
    data_source: str = "",
) -> dict:
    """Runs each algorithm ``num_seeds`` times with a budget of ``num_queries`` distinct queries.

    values: float32 [N], the task's validation metric (higher is better).
    neighbours: int32 [N, A], the search space's neighbour table.
    hyperparameters: ``{algo: {name: value}}`` overrides of the algorithms' defaults.

    Every argument is checked before anything runs; mistakes raise
    :class:`jaxnas.errors.ConfigError`. Returns the report (plain Python, JSON-ready)::

        {"space", "task", "queries", "seeds", "seed", "data_source", "global_best_valid",
         "global_worst_valid", "algorithms": {algo: {"queries": [1..Q], "best_valid_mean",
         "best_valid_std", "best_valid_sem", "best_normalised_mean", "best_normalised_std",
         "best_normalised_sem", "final": {...}, "runs_stopped_early", "hyperparameters"}}}

    ``std`` is the population standard deviation over seeds (ddof=0), ``sem`` the standard
    error of the mean (ddof=1); normalised = (x - worst) / (best - worst) over the whole column.
    """
    import jax.numpy as jnp

    algorithms = list(algorithms)
    for name in algorithms:
        if name not in baselines_lib.ALGORITHMS:
            raise ConfigError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHM_NAMES)}")
    hyperparameters = dict(hyperparameters or {})
    values = jnp.asarray(values, jnp.float32)
    neighbours = jnp.asarray(neighbours, jnp.int32)
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, numbers.Integral) or num_seeds < 1:
        raise BaselineConfigError(f"the number of seeds must be at least 1, got {num_seeds!r}")
    num_archs, num_actions = check_inputs(neighbours, values, num_queries)
    num_queries, num_seeds = int(num_queries), int(num_seeds)
    host_values = np.asarray(values, np.float64)
    if not np.all(np.isfinite(host_values)):
        raise ConfigError(f"the {task or 'task'} column has NaN or infinite values")
    resolved = {
        name: baselines_lib.resolved_hyperparameters(
            name, num_archs, num_actions, num_queries, **hyperparameters.get(name, {})
        )
        for name in algorithms
    }
    best, worst = float(host_values.max()), float(host_values.min())

    root = jax.random.PRNGKey(seed)
    report = {
        "space": space,
        "task": task,
        "queries": num_queries,
        "seeds": num_seeds,
        "seed": seed,
        "data_source": data_source,
        "num_architectures": num_archs,
        "global_best_valid": best,
        "global_worst_valid": worst,
        "statistics": "std = population std over seeds (ddof=0); sem = std(ddof=1)/sqrt(seeds); "
        "normalised = (x - global_worst_valid) / (global_best_valid - global_worst_valid)",
        "algorithms": {},
    }
    for name in algorithms:
        res = baselines_lib.run_many(
            name,
            algorithm_key(root, name),
            neighbours,
            values,
            num_queries,
            num_seeds,
            **hyperparameters.get(name, {}),
        )
        found = np.asarray(res.best_so_far)
        stats = baselines_lib.summarise(found, global_best=best, global_worst=worst)
        report["algorithms"][name] = {
            "queries": stats["queries"],
            "best_valid_mean": stats["mean"],
            "best_valid_std": stats["std"],
            "best_valid_sem": stats["sem"],
            "best_normalised_mean": stats["normalised_mean"],
            "best_normalised_std": stats["normalised_std"],
            "best_normalised_sem": stats["normalised_sem"],
            "final": {
                "best_valid_mean": stats["final_mean"],
                "best_valid_std": stats["final_std"],
                "best_valid_sem": stats["final_sem"],
                "best_normalised_mean": stats["normalised_final_mean"],
                "optimum_rate": float(np.mean(found[:, -1] >= best)),
            },
            # Runs that hit the iteration cap before spending the whole budget (expected 0).
            "runs_stopped_early": int(np.sum(np.asarray(res.num_queried) < num_queries)),
            "hyperparameters": resolved[name],
        }
    return report


def plot_baselines(report: dict, path, band: str = "std") -> Path:
    """Best validation metric found vs distinct queries: mean and a ±``band`` ("std" or "sem")
    band per algorithm, the global optimum dashed. Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxnas.experiments.io import save_figure

    if band not in BANDS:
        raise ConfigError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colours = {"random_search": "tab:gray", "local_search": "tab:green", "evolution": "tab:purple"}
    for name, algo in report["algorithms"].items():
        q = np.asarray(algo["queries"])
        mean = np.asarray(algo["best_valid_mean"])
        spread = np.asarray(algo[f"best_valid_{band}"])
        colour = colours.get(name)
        ax.plot(q, mean, color=colour, label=f"{name.replace('_', ' ')} ({mean[-1]:.4g} at {q[-1]})")
        ax.fill_between(q, mean - spread, mean + spread, color=colour, alpha=0.2, linewidth=0)
    best = report["global_best_valid"]
    ax.axhline(best, color="black", linestyle="--", linewidth=1, label=f"global optimum ({best:.4g})")
    # The first few queries span the whole metric range; start the y axis where the curves are
    # after 5% of the budget so the differences that matter stay visible.
    lows = []
    for algo in report["algorithms"].values():
        i = max(1, len(algo["queries"]) // 20) - 1
        lows.append(algo["best_valid_mean"][i] - algo[f"best_valid_{band}"][i])
    if lows:
        span = max(best - min(lows), 1e-12)
        ax.set_ylim(min(lows) - 0.05 * span, best + 0.08 * span)
    ax.set_xlabel("distinct architectures queried")
    ax.set_ylabel(f"best validation {report['task'] or 'metric'} found")
    band_text = "±1 std" if band == "std" else "±1 s.e.m."
    ax.set_title(
        f"{report['space']} / {report['task']}: mean over {report['seeds']} seeds ({band_text})"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)
