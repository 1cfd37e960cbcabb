"""``plastic sweep``, ``plastic status`` and ``plastic report``. The main ``plastic`` command adds
these subcommands with ``add_experiment_subcommands``; ``python -m plastic.experiments.cli`` runs
them on their own."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from typing import Any

SWEEP_EXAMPLES = """examples:
  plastic sweep minatar --presets drq,plastic --seeds 3 --steps 20000
  plastic sweep atari100k --presets drq,plastic --seeds 5 --replay-ratio 2 --out sweeps/atari
  plastic sweep atari100k --backend ray --address auto --resources cpu=2,gpu=0.25
  plastic sweep synthetic --presets vanilla,plastic --seeds 3 --set chunks=20
  plastic sweep minatar --presets drq,plastic --set plastic:sam.rho=0.05   # only plastic's runs
  plastic sweep dmc-medium --presets drq,plastic --seeds 5 --out sweeps/dmc-medium
  plastic sweep dmc-medium --tasks cartpole-swingup --set env.obs=state --steps 20000
  plastic status sweeps/minatar     # from another shell: each run's state, a running one's time left

Run the same command again to resume: finished runs are skipped, interrupted ones resume from
their checkpoints and failed ones are retried. Games, presets and seeds may be added later; other
settings (--steps, --replay-ratio, --set) are refused in a directory that holds a sweep: use
another --out for them."""

REPORT_EXAMPLES = """examples:
  plastic report sweeps/minatar
  plastic report sweeps/atari --baseline drq-eps --baseline spr --out report
  plastic report sweeps/atari --baseline BBF=bbf_runs.json
  plastic report sweeps/rr1 sweeps/rr2

Published Atari-100k baselines shipped with plastic (100 runs per game, released by the rliable
authors): der, drq, drq-eps (DrQ(ε)), spr. An Atari report with a baseline adds a section
"Against the published runs": where each of our final scores falls among the published runs of
its game, our IQM against theirs over the games we ran, and whether our mean percentile, and
our percentiles' spread about the 50th, are what runs drawn like the published ones would give.

The report warns (here and at the top of the report) where it compares runs of different budgets
(train.steps; DMC: env steps; published Atari-100k runs: 100k agent steps) or env.* settings,
where a label has 1 run per game (no confidence interval), and where it skipped or repaired
something: a run whose summary.json, config.json or metrics CSV cannot be read is skipped (one
line each), a torn last CSV row is dropped, and a run found twice (same label, game and seed,
e.g. a resumed copy) counts once: the copy that trained furthest, else the one finished last."""


def add_experiment_subcommands(subparsers: Any) -> None:
    """Adds ``sweep``, ``status`` and ``report`` to an ``argparse`` subparsers object; each sets ``func``."""
    from plastic.data import published_baseline_names
    from plastic.experiments.backends import BACKENDS
    from plastic.experiments.benchmarks import BENCHMARKS
    from plastic.experiments.collect import NORMALIZATIONS

    sweep = subparsers.add_parser(
        "sweep", help="run every game × preset × seed of a benchmark (locally or on Ray)",
        description="Run a benchmark's games × presets × seeds, each in its own run directory "
                    "OUT/GAME/PRESET/seedN.",
        epilog=SWEEP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("benchmark", metavar="BENCHMARK",
                       help=f"one of: {', '.join(BENCHMARKS)}")
    sweep.add_argument("--presets", action="append",
                       help="comma-separated presets (default drq,plastic; synthetic: its methods)")
    sweep.add_argument("--seeds", default="5", help="a count (5: seeds 0-4), a range (5-9) or a list (0,3)")
    sweep.add_argument("--games", "--tasks", action="append", dest="games",
                       help="comma-separated games (default: all of the benchmark's)")
    sweep.add_argument("--replay-ratio", type=float,
                       help="updates per agent step (default: the suite's; 2, dmc-medium 1)")
    sweep.add_argument("--steps", type=int,
                       help="agent steps per run (default: the suite's; 100k, dmc-medium the task's)")
    sweep.add_argument("--device", help="auto (default: cuda when present), cpu, cuda, cuda:N")
    sweep.add_argument("--set", action="append", default=[], metavar="[PRESET:]KEY=VALUE",
                       help="override a config key for every run (--set sam.rho=0.05), or only for the "
                            "runs of one of the sweep's presets (--set plastic:sam.rho=0.05, which wins "
                            "over a plain --set of the key); repeatable")
    sweep.add_argument("--out", help="sweep directory (default sweeps/BENCHMARK)")
    sweep.add_argument("--backend", default="local", choices=BACKENDS,
                       help="local: worker processes on this machine (default); ray: Ray tasks")
    sweep.add_argument("--address", help="Ray cluster address ('auto': the cluster `ray start` made here); "
                                         "none: a private local Ray instance")
    sweep.add_argument("--workers", type=int, default=0,
                       help="runs at once on this machine (default: one per core; not for a Ray cluster)")
    sweep.add_argument("--resources", help="per run, e.g. cpu=1,gpu=0.5 (default cpu=1); Ray schedules by "
                                           "these, and cpu sets the torch threads of a run")
    sweep.add_argument("--threads", type=int, help="torch threads per run (default: the run's cpu, 1)")
    sweep.add_argument("--dry-run", action="store_true",
                       help="say what each run would do (skip, resume, run or refuse) and exit")
    sweep.set_defaults(func=run_sweep_from_args)

    status = subparsers.add_parser(
        "status", help="how a sweep stands: each run finished, running (with its time left), "
                       "interrupted, failed or not started",
        description="Reads a sweep directory (its sweep.json, run directories and run locks), or one "
                    "run's directory, while it runs, in the background or elsewhere, or after it "
                    "stopped. Exit status 0 when every run is finished, 1 otherwise.")
    status.add_argument("dirs", nargs="+", metavar="DIR",
                        help="sweep directories (a sweep's --out) or run directories")
    status.set_defaults(func=run_status_from_args)

    report = subparsers.add_parser(
        "report", help="aggregate runs into a report with confidence intervals (Markdown + HTML)",
        description="Final scores, IQM/median/mean/optimality gap with stratified-bootstrap CIs "
                    "(rliable), probability of improvement, performance profiles, learning curves "
                    "and per-game tables of every finished run under the directories.",
        epilog=REPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("dirs", nargs="+", metavar="DIR", help="sweep or run directories")
    report.add_argument("--baseline", action="append", default=[], metavar="[LABEL=]NAME|FILE",
                        help="published per-run scores: NAME, one shipped with plastic "
                             f"({', '.join(published_baseline_names())}; case-insensitive), or FILE, "
                             "JSON {game: [final score of each run, ...]}; LABEL names it in the report "
                             "(repeatable)")
    report.add_argument("--out", help="report directory (default DIR/report, or ./report for several DIRs)")
    report.add_argument("--normalization", default="auto", choices=NORMALIZATIONS,
                        help="auto: human-normalised on Atari, min-max over the report's runs on MinAtar, "
                             "raw returns on DMC")
    report.add_argument("--reps", type=int, default=2000, help="bootstrap samples (default 2000)")
    report.add_argument("--confidence", type=float, default=0.95, help="CI coverage (default 0.95)")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    report.add_argument("--title", help="report title")
    report.set_defaults(func=run_report_from_args)


def run_sweep_from_args(args: argparse.Namespace) -> int:
    """Runs the sweep; 0 when every run finished, 1 when some failed, 130 when interrupted."""
    from plastic.experiments.backends import make_backend, parse_resources
    from plastic.experiments.sweep import (
        check_devices_here,
        make_spec,
        parse_sweep_assignments,
        plan_jobs,
        run_sweep,
    )

    shared, per_preset = parse_sweep_assignments(args.set or [])
    spec = make_spec(args.benchmark, presets=args.presets, seeds=args.seeds, games=args.games,
                     replay_ratio=args.replay_ratio, steps=args.steps, device=args.device,
                     overrides=shared, preset_overrides=per_preset, out=args.out)
    backend = make_backend(args.backend, workers=args.workers, threads=args.threads, address=args.address,
                           resources=parse_resources(args.resources))
    if args.backend == "local" and not args.dry_run:  # a Ray cluster's workers may have devices
        check_devices_here(plan_jobs(spec))  # this machine lacks; a dry run may plan for another
    try:
        status = run_sweep(spec, backend, command=sys.argv[:], dry_run=args.dry_run)
    except KeyboardInterrupt:
        return 130
    return 1 if status.get("failed") else 0


@functools.cache
def _subcommand_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    add_experiment_subcommands(parser.add_subparsers())
    return parser


def planned_by_command(command: Sequence[str]) -> tuple[list[str], list[str], list[int]] | None:
    """The games, presets and seeds a recorded ``plastic sweep`` command line asked for (a sweep's
    sweep.json keeps each command it ran); None when it does not parse as one."""
    import contextlib
    import io

    from plastic.experiments.sweep import make_spec

    if "sweep" not in command:
        return None
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = _subcommand_parser().parse_args(list(command[list(command).index("sweep"):]))
        spec = make_spec(args.benchmark, presets=args.presets, seeds=args.seeds, games=args.games)
    except (SystemExit, ValueError, ImportError):  # e.g. a DMC task that needs dm_control to check
        return None
    return spec.games, spec.presets, spec.seeds


def run_status_from_args(args: argparse.Namespace) -> int:
    from pathlib import Path

    from plastic.experiments.status import status_text

    texts, finished = zip(*(status_text(Path(directory)) for directory in args.dirs))
    print("\n".join(texts))
    return 0 if all(finished) else 1


def run_report_from_args(args: argparse.Namespace) -> int:
    from plastic.experiments.report import build_report

    result = build_report(args.dirs, args.out, baselines=args.baseline, normalization=args.normalization,
                          reps=args.reps, seed=args.seed, confidence=args.confidence, title=args.title)
    print(f"report: {result['markdown']}\n        {result['html']}")
    for label in result["labels"]:
        iqm = result["aggregates"][label]["iqm"]
        if result["runs_per_game"][label] < 2:
            print(f"  {label}: IQM {iqm['value']:.3f} (1 run: no confidence interval)")
        else:
            flat = " (zero-width CI)" if iqm["low"] == iqm["high"] else ""
            print(f"  {label}: IQM {iqm['value']:.3f} [{iqm['low']:.3f}, {iqm['high']:.3f}]{flat}")
    sys.stdout.flush()
    for warning in result["warnings"]:  # also at the top of the report
        print(f"plastic: warning: {warning}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plastic.experiments.cli COMMAND ARGS``: ``plastic COMMAND ARGS`` for sweep, status
    and report."""
    from plastic.cli import main as plastic_main

    return plastic_main(sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":
    sys.exit(main())
