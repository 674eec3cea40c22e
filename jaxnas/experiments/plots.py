"""Figures of transfer results (matplotlib, Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from jaxnas.experiments.io import save_figure  # noqa: E402

REGIME_STYLE = {
    "scratch": dict(color="black", linestyle="--", label="scratch"),
    "retrain": dict(color="tab:blue", linestyle="-", label="retrain (from pretrained)"),
    "finetune": dict(color="tab:orange", linestyle="-", linewidth=3, alpha=0.8, label="fine-tune (from pretrained)"),
}
BASELINE_STYLE = {
    "random_search": dict(color="tab:gray", linestyle=":"),
    "local_search": dict(color="tab:green", linestyle=":"),
    "evolution": dict(color="tab:purple", linestyle=":"),
}


def plot_transfer(results: dict, path) -> None:
    """Left: score vs target env steps per regime, baselines as reference lines. Right: the
    pretraining curve on the source task."""
    fig, (ax, ax_pre) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [2, 1]})
    regimes = results["regimes"]
    for name in ("scratch", "retrain", "finetune"):
        c = regimes[name]["curve"]
        ax.plot(c["env_steps"], c["score"], marker="o", markersize=3, **REGIME_STYLE[name])
    zs = regimes["zero_shot"]["final"]["normalised_score"]
    ax.scatter([0], [zs], s=90, marker="*", color="tab:red", zorder=5, label=f"zero-shot ({zs:.3f})")
    q = results["baselines"]["queries_per_regime"]["scratch"]
    for algo, b in results["baselines"]["algorithms"].items():
        s = b["at_regime_queries"]["scratch"]["normalised_score"]
        ax.axhline(s, label=f"{algo.replace('_', ' ')} @ {q} queries ({s:.3f})", **BASELINE_STYLE.get(algo, {}))
    rw = results["random_walk"]["normalised_score"]
    ax.axhline(rw, color="tab:brown", linestyle="-.", linewidth=1, label=f"random walk, eps=1 ({rw:.3f})")
    ax.set_xlabel("environment steps on the target task")
    ax.set_ylabel("normalised best validation metric found\n(0 = worst, 1 = global optimum)")
    ax.set_title(f"{results['space']}: {results['source']} \u2192 {results['target']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")

    pre = results["pretrain"]["curve"]
    ax_pre.plot(pre["env_steps"], pre["score"], color="tab:blue", marker="o", markersize=3)
    ax_pre.set_xlabel("environment steps on the source task")
    ax_pre.set_title(f"pretraining on {results['source']}")
    ax_pre.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
