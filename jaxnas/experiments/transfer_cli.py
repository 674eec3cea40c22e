"""Command line of the transfer experiment (``experiments/run.py``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from jaxnas.errors import JaxnasError

DESCRIPTION = """\
Pretrain an Ape-X DQN agent to search architectures on the SOURCE task of TransNAS-Bench-101,
then measure it on the TARGET task: zero-shot, fine-tuned, retrained, against an agent trained
from scratch on the target. Writes DIR/results.json and DIR/curves.png and prints a summary.
"""


def build_parser() -> argparse.ArgumentParser:
    from jaxnas.experiments.presets import PRESETS

    p = argparse.ArgumentParser(
        prog="experiments/run.py", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", required=True, help="task to pretrain on (any task column of the data)")
    p.add_argument("--target", required=True, help="task to transfer to (different from --source)")
    p.add_argument("--space", default="micro", choices=["micro", "macro"], help="search space (default: micro)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="CSV file/folder or the official transnas-bench_v10141024.pth (default: "
                        "$JAXNAS_DATA, then ../shared/data/transnas-bench-101, then ./data)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: runs/<source>-to-<target>-<space>)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS),
                   help="budgets and settings: " + "; ".join(f"{k}: {v.description}" for k, v in PRESETS.items())
                   + " (default: quick)")
    p.add_argument("--pretrain-steps", type=int, default=None, metavar="N", help="env steps of pretraining on the source (overrides the preset)")
    p.add_argument("--finetune-steps", type=int, default=None, metavar="N", help="env steps of fine-tuning on the target (overrides the preset)")
    p.add_argument("--retrain-steps", type=int, default=None, metavar="N", help="env steps of retraining on the target, also the scratch agent's budget (overrides the preset)")
    p.add_argument("--devices", type=int, default=1, metavar="D",
                   help="train data-parallel on D devices, each with its own actors and replay, gradients "
                        "averaged; budgets count all devices' steps (default: 1, the single-device loop)")
    p.add_argument("--seeds", type=int, default=1, metavar="K",
                   help="run seeds SEED..SEED+K-1 together (vmapped) and report mean and 95%% interval "
                        "over seeds (default: 1)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out from its checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _positive(name: str, value):
    if value is not None and value < 1:
        raise JaxnasError(f"--{name} must be a positive number of env steps, got {value}")
    return value


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits with 2 on malformed flags
    try:
        return _run(args)
    except JaxnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from jaxnas.data import load_table
    from jaxnas.experiments.compile_cache import enable_compilation_cache
    from jaxnas.experiments.io import write_json
    from jaxnas.experiments.plots import plot_transfer
    from jaxnas.experiments.presets import get_preset
    from jaxnas.experiments.signals import StopRequest
    from jaxnas.experiments.transfer import TransferSpec, run_transfer, summary_table
    from jaxnas.trainer.phase import Interrupted

    for name in ("pretrain-steps", "finetune-steps", "retrain-steps"):
        _positive(name, getattr(args, name.replace("-", "_")))
    for name in ("devices", "seeds"):
        if getattr(args, name) < 1:
            raise JaxnasError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.devices > 1 and args.seeds > 1:
        raise JaxnasError("--devices > 1 together with --seeds > 1 is not supported; choose one of them")
    multi = {k: getattr(args, k) for k in ("devices", "seeds") if getattr(args, k) != 1}
    preset = get_preset(args.preset)
    enable_compilation_cache()
    table = load_table(args.space, args.data)
    spec = TransferSpec(
        space=args.space,
        source=args.source,
        target=args.target,
        pretrain_steps=args.pretrain_steps or preset.pretrain_steps,
        finetune_steps=args.finetune_steps or preset.finetune_steps,
        retrain_steps=args.retrain_steps or preset.retrain_steps,
        config=preset.config,
        seed=args.seed,
        preset=args.preset,
    ).validate(table)
    out = Path(args.out or f"runs/{args.source}-to-{args.target}-{args.space}")
    print(f"data: {table.source}\noutput: {out}")
    start = time.perf_counter()
    with StopRequest() as stop:
        try:
            results = run_transfer(
                spec, table, out, resume=args.resume, should_stop=stop, progress=not args.no_progress, **multi
            )
        except Interrupted as e:
            print(f"{e}\nresume with the same command plus --resume", file=sys.stderr)
            return stop.exit_code or 130
    results["total_wall_clock_s"] = time.perf_counter() - start
    write_json(out / "results.json", results)
    plot_transfer(results, out / "curves.png")
    print()
    print(summary_table(results))
    if "seeds" in results:
        from jaxnas.experiments.transfer_multi import seeds_table

        print()
        print(seeds_table(results))
    print(f"\nwrote {out / 'results.json'} and {out / 'curves.png'} ({results['total_wall_clock_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
