"""The transfer study's report: ``report.md``, ``heatmap.png`` and ``curves_grid.png``.

Everything here reads the study dictionary of :func:`jaxnas.experiments.study.make_study` (the
content of ``study.json``), so a report can be drawn again from a saved study without JAX.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from jaxnas.experiments.io import save_figure, write_atomic, write_json  # noqa: E402

REGIME_LABEL = {"scratch": "scratch", "zero_shot": "zero-shot", "finetune": "fine-tune", "retrain": "retrain"}
HEATMAP_REGIMES = ("zero_shot", "finetune", "retrain")
ALGO_LABEL = {"random_search": "random search", "local_search": "local search", "evolution": "evolution"}


def write_outputs(study: dict, out_dir) -> dict:
    """Writes study.json, report.md, heatmap.png and curves_grid.png into ``out_dir``; returns
    their paths."""
    out_dir = Path(out_dir)
    paths = {
        "study": write_json(out_dir / "study.json", study),
        "report": write_report(study, out_dir / "report.md"),
    }
    if study["aggregate"]["pairs"]:
        paths["heatmap"] = plot_heatmap(study, out_dir / "heatmap.png")
        paths["curves_grid"] = plot_curves_grid(study, out_dir / "curves_grid.png")
    return paths


# --------------------------------------------------------------------------- numbers as text


def fmt_ci(stats: dict, digits: int = 3) -> str:
    """``0.912 [0.905, 0.919]``, or just the mean with one seed."""
    if stats is None or stats.get("mean") is None:
        return "-"
    m = f"{stats['mean']:.{digits}f}"
    if stats.get("ci_low") is None:
        return m
    return f"{m} [{stats['ci_low']:.{digits}f}, {stats['ci_high']:.{digits}f}]"


def _signed(x, digits: int = 4) -> str:
    """``+0.0123``; a value that rounds to zero is written without a sign."""
    if x is None:
        return "-"
    text = f"{x:+.{digits}f}"
    return text[1:] if float(text) == 0.0 else text


def _steps(x) -> str:
    return "-" if x is None else f"{int(round(x)):,}"


def _ttm(t: dict) -> str:
    """Mean env steps over the seeds that matched, and how many did."""
    if t["matched"] == 0:
        return f"never (0/{t['n']})"
    return f"{_steps(t['mean_matched'])} ({t['matched']}/{t['n']})"


def _at_steps(curve: dict, steps: int) -> str:
    """A mean curve's score at its first evaluation at or after ``steps``."""
    if not curve:
        return "-"
    k = next((i for i, x in enumerate(curve["env_steps"]) if x >= steps), len(curve["env_steps"]) - 1)
    lo, hi = curve["ci_low"][k], curve["ci_high"][k]
    m = f"{curve['mean'][k]:.3f}"
    return m if lo is None else f"{m} [{lo:.3f}, {hi:.3f}]"


def _overlap_text(flag) -> str:
    return {None: "no CI with 1 seed", True: "CIs overlap", False: "CIs do not overlap"}[flag]


def _baseline_cells(reg: dict, algos) -> list[str]:
    cells = []
    for algo in algos:
        b = reg["baselines"].get(algo)
        cells.append("-" if b is None else fmt_ci(b["normalised_score"]))
    return cells


def _gain_line(source: str, target: str, pair: dict, scratch: dict) -> str:
    g = pair["gain"]
    s = scratch["final"]["normalised_score"]["mean"]
    parts = []
    for name in ("retrain", "finetune"):
        r = g["by_regime"][name]
        pd = r["paired_difference"]
        paired = ""
        if pd.get("ci_low") is not None:
            excl = pd["ci_low"] > 0 or pd["ci_high"] < 0
            paired = f", paired difference CI [{pd['ci_low']:+.4f}, {pd['ci_high']:+.4f}]" + (
                " excludes 0" if excl else " includes 0")
        parts.append(f"{REGIME_LABEL[name]} {r['mean']:.4f} ({_signed(r['difference'])}; "
                     f"{_overlap_text(r['ci_overlap'])}{paired})")
    verdict = "**gains**" if g["gains"] else "**does not gain**"
    return f"- {source} -> {target}: {verdict} — scratch {s:.4f}; " + "; ".join(parts)


def render_report(study: dict) -> str:
    st = study["study"]
    agg = study["aggregate"]
    cfg = st["config"]
    tasks = st["tasks"]
    lines = [
        f"# Transfer study: {st['space']} space, {len(tasks)} tasks, {st['seeds']} seed(s), preset `{st['preset']}`",
        "",
    ]
    if not study["complete"]:
        lines += [f"**Partial study: {study['runs_done']} of {study['runs_total']} pair runs done.** "
                  f"Missing: {', '.join(study['missing'])}.", ""]
    lines += [
        f"- Tasks: {', '.join(tasks)} ({len(tasks) * (len(tasks) - 1)} ordered pairs); seeds 0..{st['seeds'] - 1}.",
        f"- Budgets (environment steps): pretraining {st['pretrain_steps']:,} on the source; "
        f"fine-tune {st['finetune_steps']:,} and retrain {st['retrain_steps']:,} on the target "
        f"(one run, fine-tune is its first part); scratch {st['retrain_steps']:,} on the target.",
        f"- Agent: {cfg['num_envs']} actors x {cfg['act_steps']} steps per iteration, reward "
        f"`{cfg['reward_mode']}`, normalisation `{cfg['normalisation']}`, replay ratio "
        f"{cfg['updates_per_iteration'] * cfg['batch_size'] / (cfg['act_steps'] * cfg['num_envs']):g} "
        f"(batch {cfg['batch_size']}), network d_model {cfg['d_model']} x {cfg['num_layers']} layers; "
        f"horizon {cfg['horizon']}, evaluation every "
        f"{cfg['eval_every']:,} steps on {cfg['eval_episodes']} greedy episodes from random starts; "
        f"baselines averaged over {st['baseline_seeds']} seeds.",
        f"- Data: `{st.get('data')}`.",
        f"- Compute: {study['training_wall_clock_s'] / 60:.1f} min in training phases (each pretraining, "
        f"scratch agent and transfer run counted once); {study['compute_wall_clock_s'] / 60:.1f} min "
        "wall clock of the runs that finished the pairs (with compilation, evaluation and baselines).",
        "",
        "**Score** = normalised best validation metric found per episode, averaged over episodes "
        "(0 = worst architecture, 1 = global optimum). Numbers are means over seeds with a 95% "
        "confidence interval in brackets (t-distribution, n-1 degrees of freedom); with one seed "
        "there is no interval. *Queries* is the mean number of distinct architectures an episode "
        "evaluated; the baselines are given at that same number of queries.",
        "",
    ]

    lines += ["## Final scores per target", ""]
    algos = None
    for target in tasks:
        tgt = agg["targets"].get(target)
        if tgt is None:
            continue
        sc = tgt["scratch"]
        algos = list(sc["baselines"])
        head = ["source", "regime", "score [95% CI]", "vs scratch", "queries"] + [
            f"{ALGO_LABEL.get(a, a)} @ same queries" for a in algos]
        lines += [f"### Target: {target}", "", "| " + " | ".join(head) + " |",
                  "|" + "|".join(["---"] * len(head)) + "|"]
        lines.append("| " + " | ".join(
            ["(none)", "scratch", fmt_ci(sc["final"]["normalised_score"]), "", f"{sc['final']['distinct_queries_mean']['mean']:.1f}"]
            + _baseline_cells(sc, algos)) + " |")
        for source in tasks:
            pair = agg["pairs"].get(source, {}).get(target)
            if pair is None:
                continue
            for name in HEATMAP_REGIMES:
                reg = pair["regimes"][name]
                lines.append("| " + " | ".join(
                    [source, REGIME_LABEL[name], fmt_ci(reg["final"]["normalised_score"]),
                     _signed(reg["delta_vs_scratch"]["mean"]),
                     f"{reg['final']['distinct_queries_mean']['mean']:.1f}"]
                    + _baseline_cells(reg, algos)) + " |")
        rw = tgt["random_walk"]
        lines += ["", f"Random walk (epsilon = 1, {rw['distinct_queries_mean']['mean']:.1f} queries): "
                  f"{fmt_ci(rw['normalised_score'])}. Global best validation metric "
                  f"{tgt['global_best_valid']:.4f}.", ""]

    lines += [
        "## Time to match scratch", "",
        "Environment steps on the target until the greedy policy first reaches the scratch agent's "
        "final score (mean over the seeds that reached it; in brackets how many did). Zero-shot "
        "counts 0 if it is already there; fine-tune is limited to its budget. The scratch column "
        "is when the scratch agent itself first reached its final score.", "",
        f"The last four columns compare the two agents at equal training on the target: the score "
        f"after the fine-tune budget ({st['finetune_steps']:,} steps; the first evaluation at or "
        "after it) of the scratch agent and of the pretrained one; and the mean score over all "
        "evaluations of the full run (the normalised area under the learning curve: higher means "
        "good architectures were found earlier).", "",
        "| source -> target | scratch | zero-shot | fine-tune | retrain | scratch @ fine-tune budget "
        "| pretrained @ fine-tune budget | scratch curve mean | retrain curve mean |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for source in tasks:
        for target in tasks:
            pair = agg["pairs"].get(source, {}).get(target)
            if pair is None:
                continue
            r = pair["regimes"]
            sc = agg["targets"][target]["scratch"]["time_to_match"]
            early_scratch = _at_steps(agg["targets"][target]["scratch_curve"], st["finetune_steps"])
            lines.append(f"| {source} -> {target} | {_ttm(sc)} | {_ttm(r['zero_shot']['time_to_match'])} | "
                         f"{_ttm(r['finetune']['time_to_match'])} | {_ttm(r['retrain']['time_to_match'])} | "
                         f"{early_scratch} | {fmt_ci(r['finetune']['final']['normalised_score'])} | "
                         f"{fmt_ci(agg['targets'][target]['scratch']['curve_mean'])} | "
                         f"{fmt_ci(r['retrain']['curve_mean'])} |")

    lines += [
        "", "## Which pairs gain from pretraining", "",
        "Rule: a pair **gains** if the mean final score of retrain, or of fine-tune, is higher than "
        "the scratch agent's mean final score on the same target. Next to each difference: whether "
        "the two 95% intervals overlap (overlap means the difference is not established at this "
        "number of seeds) and, with 2+ seeds, the interval of the per-seed paired difference "
        "(same seed, same target).", "",
    ]
    gain, no_gain = [], []
    for source in tasks:
        for target in tasks:
            pair = agg["pairs"].get(source, {}).get(target)
            if pair is None:
                continue
            lines.append(_gain_line(source, target, pair, agg["targets"][target]["scratch"]))
            (gain if pair["gain"]["gains"] else no_gain).append(f"{source} -> {target}")
    n = len(gain) + len(no_gain)
    lines += ["", f"**{len(gain)} of {n} pairs gain** from pretraining"
              + (f" ({', '.join(gain)})" if gain else "") + "; "
              + (f"{len(no_gain)} do not ({', '.join(no_gain)})." if no_gain else "none fails to gain.")]
    separated = [f"{s} -> {t}" for s in tasks for t in tasks
                 if agg["pairs"].get(s, {}).get(t) and any(
                     g["ci_overlap"] is False and g["gains"]
                     for g in agg["pairs"][s][t]["gain"]["by_regime"].values())]
    if st["seeds"] < 2:
        lines.append("With one seed there are no intervals: these differences are single runs and "
                     "may be within seed-to-seed noise.")
    else:
        paired = [f"{s} -> {t}" for s in tasks for t in tasks
                  if agg["pairs"].get(s, {}).get(t) and any(
                      g["gains"] and (g["paired_difference"].get("ci_low") or 0.0) > 0
                      for g in agg["pairs"][s][t]["gain"]["by_regime"].values())]
        lines.append(f"Gains whose interval does not overlap scratch's: {len(separated)}"
                     + (f" ({', '.join(separated)})" if separated else "")
                     + f"; gains whose paired-difference interval lies above 0: {len(paired)}"
                     + (f" ({', '.join(paired)})." if paired else "."))
    lines += ["", "## Figures", "",
              "- `heatmap.png`: final score minus scratch's per source (rows), target (columns) and regime (panels).",
              "- `curves_grid.png`: learning curves on each target, one line per source (retrain run; "
              "the thick part is fine-tune, the star zero-shot), scratch dashed.", ""]
    return "\n".join(lines)


def write_report(study: dict, path) -> Path:
    text = render_report(study)

    def write(tmp):
        Path(tmp).write_text(text)

    return write_atomic(path, write)


# --------------------------------------------------------------------------- figures


def delta_matrix(study: dict, regime: str) -> tuple[np.ndarray, np.ndarray]:
    """[sources, targets] mean (regime score - scratch score) and the paired-difference CI
    half-widths (NaN where unavailable or source == target)."""
    tasks = study["study"]["tasks"]
    pairs = study["aggregate"]["pairs"]
    mean = np.full((len(tasks), len(tasks)), np.nan)
    hw = np.full_like(mean, np.nan)
    for i, s in enumerate(tasks):
        for j, t in enumerate(tasks):
            p = pairs.get(s, {}).get(t)
            if p is None:
                continue
            d = p["regimes"][regime]["delta_vs_scratch"]
            mean[i, j] = d["mean"]
            if d.get("half_width") is not None:
                hw[i, j] = d["half_width"]
    return mean, hw


def plot_heatmap(study: dict, path) -> Path:
    tasks = study["study"]["tasks"]
    mats = {r: delta_matrix(study, r) for r in HEATMAP_REGIMES}
    finite = np.concatenate([m[np.isfinite(m)] for m, _ in mats.values()] + [np.zeros(1)])
    vmax = max(float(np.abs(finite).max()), 1e-3)
    norm = TwoSlopeNorm(vmin=-vmax, vcenter=0.0, vmax=vmax)
    n = len(tasks)
    fig, axes = plt.subplots(1, len(HEATMAP_REGIMES), figsize=(4.2 * len(HEATMAP_REGIMES) + 1.2, 4.8),
                             squeeze=False, layout="constrained")
    im = None
    for k, (ax, regime) in enumerate(zip(axes[0], HEATMAP_REGIMES)):
        mean, hw = mats[regime]
        im = ax.imshow(np.ma.masked_invalid(mean), cmap="RdBu", norm=norm)
        ax.set_facecolor("0.85")
        for i in range(n):
            for j in range(n):
                if i == j:
                    ax.text(j, i, "\u2014", ha="center", va="center", color="0.4")
                elif np.isfinite(mean[i, j]):
                    txt = _signed(mean[i, j], 3)
                    if np.isfinite(hw[i, j]):
                        txt += f"\n\u00b1{hw[i, j]:.3f}"
                    dark = abs(mean[i, j]) > 0.6 * vmax
                    ax.text(j, i, txt, ha="center", va="center", fontsize=8, color="white" if dark else "black")
        ax.set_xticks(range(n), tasks, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(n), tasks if k == 0 else [], fontsize=8)
        ax.set_xlabel("target")
        ax.set_title(REGIME_LABEL[regime])
    axes[0][0].set_ylabel("source (pretrained on)")
    cbar = fig.colorbar(im, ax=list(axes[0]), shrink=0.8)
    cbar.set_label("final score \u2212 scratch final score")
    seeds = study["study"]["seeds"]
    fig.suptitle(f"{study['study']['space']}: transfer vs scratch, mean over {seeds} seed(s)"
                 + (" (\u00b1 95% CI of the paired difference)" if seeds > 1 else ""), fontsize=11)
    out = save_figure(fig, path)
    plt.close(fig)
    return out


def plot_curves_grid(study: dict, path) -> Path:
    tasks = study["study"]["tasks"]
    agg = study["aggregate"]
    finetune_steps = study["study"]["finetune_steps"]
    targets = [t for t in tasks if t in agg["targets"]]
    ncols = 2 if len(targets) > 1 else 1
    nrows = math.ceil(len(targets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 4.2 * nrows), squeeze=False)
    colors = {s: plt.cm.tab10(i) for i, s in enumerate(tasks)}
    for ax in axes.flat[len(targets):]:
        ax.axis("off")
    for ax, target in zip(axes.flat, targets):
        tgt = agg["targets"][target]
        sc = tgt["scratch_curve"]
        _line(ax, sc, color="black", linestyle="--", linewidth=1.6)
        for source in tasks:
            pair = agg["pairs"].get(source, {}).get(target)
            if pair is None:
                continue
            c = pair["transfer_curve"]
            col = colors[source]
            _line(ax, c, color=col, linestyle="-", linewidth=1.3)
            k = next((i for i, s in enumerate(c["env_steps"]) if s >= finetune_steps), len(c["env_steps"]) - 1)
            ax.plot(c["env_steps"][: k + 1], c["mean"][: k + 1], color=col, linewidth=4.5, alpha=0.35,
                    solid_capstyle="round")
            ax.scatter([0], [c["mean"][0]], marker="*", s=110, color=col, edgecolor="black", linewidth=0.5, zorder=5)
        ax.set_title(f"target: {target}")
        ax.set_xlabel("environment steps on the target")
        ax.set_ylabel("normalised score")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color="black", linestyle="--", label="scratch")]
    handles += [Line2D([], [], color=colors[s], label=f"from {s} (retrain)") for s in tasks]
    handles += [Line2D([], [], color="gray", linewidth=4.5, alpha=0.35, label="fine-tune budget"),
                Line2D([], [], color="gray", marker="*", linestyle="", markersize=10, label="zero-shot")]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8,
               bbox_to_anchor=(0.5, -0.01))
    seeds = study["study"]["seeds"]
    fig.suptitle(f"{study['study']['space']}: learning curves on each target, mean over {seeds} seed(s)"
                 + (" with 95% CI" if seeds > 1 else ""), fontsize=11)
    fig.tight_layout(rect=(0, 0.07 if len(targets) > 2 else 0.1, 1, 0.97))
    out = save_figure(fig, path)
    plt.close(fig)
    return out


def _line(ax, curve: dict, **style):
    x = np.asarray(curve["env_steps"], float)
    y = np.asarray(curve["mean"], float)
    ax.plot(x, y, **style)
    if curve.get("n", 1) > 1 and all(v is not None for v in curve["ci_low"]):
        ax.fill_between(x, np.asarray(curve["ci_low"], float), np.asarray(curve["ci_high"], float),
                        color=style.get("color"), alpha=0.12, linewidth=0)
