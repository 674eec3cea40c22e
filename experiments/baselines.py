#!/usr/bin/env python
"""Classic NAS baselines on one TransNAS-Bench-101 task.

python experiments/baselines.py --space micro --task class_object \
    --algo random_search,local_search,evolution --queries 300 --seeds 500 --out runs/baselines
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script from anywhere: make the repository's package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxnas.errors import ConfigError, JaxnasError  # noqa: E402

PROG = "experiments/baselines.py"
ALGORITHMS = ("random_search", "local_search", "evolution")
DESCRIPTION = """\
Run classic architecture-search baselines on one task of TransNAS-Bench-101, many seeds at once
(vmapped and jitted), and write DIR/baselines.json (per-query mean / std / s.e.m. of the best
validation metric found, raw and min-max normalised) and DIR/baselines.png (the curves).

A query is a distinct architecture: looking at an architecture again costs nothing.
  random_search  uniform sampling without replacement
  local_search   first-improvement hill climbing over the neighbour table (one action = change
                 one edge op / macro slot), restarting from a random unqueried architecture at
                 each local optimum
  evolution      regularised (aging) evolution, Real et al. 2019: tournament of --sample-size
                 out of a population of --population-size, child = random valid neighbour of
                 the winner, the oldest member dies
"""


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    # One clear line instead of argparse's usage block; main() turns it into exit status 2.
    def error(self, message):
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--space", default="micro", choices=["micro", "macro"],
                   help="search space (default: micro)")
    p.add_argument("--task", default="class_object",
                   help="task column whose validation metric is maximised, e.g. class_object, "
                        "room_layout, autoencoder, segmentsemantic (default: class_object)")
    p.add_argument("--algo", default=",".join(ALGORITHMS), metavar="A[,A...]",
                   help=f"comma-separated algorithms among {', '.join(ALGORITHMS)} "
                        "(default: all three)")
    p.add_argument("--queries", type=int, default=300, metavar="Q",
                   help="budget of distinct architectures per run, 1..N (default: 300)")
    p.add_argument("--seeds", type=int, default=500, metavar="S",
                   help="independent runs per algorithm, >= 1 (default: 500)")
    p.add_argument("--seed", type=int, default=0,
                   help="master random seed; each algorithm's runs derive from it and the "
                        "algorithm's name (default: 0)")
    p.add_argument("--population-size", type=int, default=50, metavar="P",
                   help="evolution: population size (default: 50)")
    p.add_argument("--sample-size", type=int, default=10, metavar="K",
                   help="evolution: tournament size, <= population size (default: 10)")
    p.add_argument("--band", default="std", choices=["std", "sem"],
                   help="shaded band around each mean curve in the plot: ±1 standard deviation "
                        "over seeds or ±1 standard error of the mean (default: std)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="CSV file/folder or the official transnas-bench_v10141024.pth (default: "
                        "$JAXNAS_DATA, then ../shared/data/transnas-bench-101, then ./data)")
    p.add_argument("--out", default="runs/baselines", metavar="DIR",
                   help="output folder for baselines.json and baselines.png "
                        "(default: runs/baselines)")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return _run(args)
    except _UsageError as e:
        print(f"{PROG}: error: {e} (see --help)", file=sys.stderr)
        return 2
    except JaxnasError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{PROG}: error: cannot write the results: {e}", file=sys.stderr)
        return 1


def _check_cheap(args) -> None:
    """Checks that need no data, before JAX is imported, so a typo fails in a fraction of a
    second (jaxnas.experiments.baselines.parse_algorithms checks the names again)."""
    for name in (a.strip() for a in args.algo.split(",")):
        if name and name not in ALGORITHMS:
            raise ConfigError(
                f"unknown algorithm {name!r} in --algo; choose from {', '.join(ALGORITHMS)} "
                f"(comma-separated)"
            )
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    if args.queries < 1:
        raise ConfigError(f"--queries must be at least 1, got {args.queries}")


def _run(args) -> int:
    _check_cheap(args)

    from jaxnas.data import load_table
    from jaxnas.experiments.baselines import baseline_study, parse_algorithms, plot_baselines
    from jaxnas.experiments.io import write_json
    from jaxnas.spaces import make_space

    algorithms = parse_algorithms(args.algo)
    table = load_table(args.space, args.data, tasks=[args.task])
    space = make_space(table)
    if args.queries > space.num_archs:
        raise ConfigError(
            f"--queries {args.queries} is more than the {space.num_archs} architectures of the "
            f"{args.space} space; use at most {space.num_archs}"
        )
    report = baseline_study(
        table.valid_of(args.task),
        space.neighbours,
        algorithms=algorithms,
        num_queries=args.queries,
        num_seeds=args.seeds,
        seed=args.seed,
        hyperparameters={
            "evolution": {"population_size": args.population_size,
                          "sample_size": args.sample_size},
        },
        space=args.space,
        task=args.task,
        data_source=table.source,
    )
    out = Path(args.out)
    json_path = write_json(out / "baselines.json", report)
    png_path = plot_baselines(report, out / "baselines.png", band=args.band)

    print(f"{args.space} / {args.task}: {args.seeds} seeds x {args.queries} distinct queries "
          f"(global best {report['global_best_valid']:.4f}, worst {report['global_worst_valid']:.4f})")
    for name, algo in report["algorithms"].items():
        f = algo["final"]
        print(f"  {name:<14} best valid {f['best_valid_mean']:.4f} ± {f['best_valid_sem']:.4f} (sem)"
              f"  normalised {f['best_normalised_mean']:.4f}  optimum found {f['optimum_rate']:.1%}")
    print(f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
