"""``plastic bench learner | acting``: speed of the learner update and of acting, as JSON lines.

The lead wires these into ``plastic`` with :func:`add_bench_subcommands` and
:func:`run_bench_from_args`; meanwhile ``python -m plastic.bench.cli learner --preset plastic``.
"""

from __future__ import annotations

import argparse
import json
import sys

from plastic.bench.threads import configure_threads


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="plastic", help="drq, plastic, plastic-dagger or drq+COMPONENTS")
    parser.add_argument("--suite", default="atari", choices=["atari", "minatar"],
                        help="atari: 4x84x84 Nature CNN; minatar: 4x10x10 one-conv encoder")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--num-actions", type=int, help="default: 18 (atari), 6 (minatar)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads; default 0: plastic's choice, 1 on CPU "
                        "(see benchmarks/README.md)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                        help="override a config key, e.g. --set network.noisy=false (repeatable)")


def add_bench_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench`` (with ``learner`` and ``acting``) to the top-level subparsers of ``plastic``.

    The ``bench`` parser sets ``func=run_bench_from_args``, for a ``main`` that calls ``args.func(args)``.
    """
    bench = subparsers.add_parser("bench", help="speed of the learner update and of acting (JSON)")
    bench.set_defaults(func=run_bench_from_args)
    which = bench.add_subparsers(dest="bench", required=True, metavar="WHAT")

    learner = which.add_parser("learner", help="time RainbowAgent.update against the reference")
    _common(learner)
    learner.add_argument("--batch-size", type=int, default=32)
    learner.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    learner.add_argument("--per-round", type=int, default=3, help="updates per round")
    learner.add_argument("--no-reference", action="store_true", help="time the fast update only")

    acting = which.add_parser("acting", help="time one observation through the network (+ env step)")
    _common(acting)
    acting.add_argument("--steps", type=int, default=300, help="timed steps per round")
    acting.add_argument("--rounds", type=int, default=3)
    acting.add_argument("--env", action="store_true", help="also step a real environment")
    acting.add_argument("--no-reference", action="store_true", help="time the fast path only")


def run_bench_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark ``args.bench`` names and print its JSON line; the exit code."""
    from plastic.configs import parse_assignments

    threads = configure_threads(args.threads, args.device)
    overrides = parse_assignments(args.set)
    if args.bench == "learner":
        from plastic.bench.learner import bench_learner

        result = bench_learner(
            args.preset, suite=args.suite, batch_size=args.batch_size, device=args.device,
            num_actions=args.num_actions, rounds=args.rounds, per_round=args.per_round,
            reference=not args.no_reference, overrides=overrides,
        )
    elif args.bench == "acting":
        from plastic.bench.acting import bench_acting

        result = bench_acting(
            args.preset, suite=args.suite, device=args.device, num_actions=args.num_actions,
            steps=args.steps, rounds=args.rounds, with_env=args.env,
            reference=not args.no_reference, overrides=overrides,
        )
    else:
        raise ValueError(f"unknown benchmark {args.bench!r}; valid: learner, acting")
    result["threads_setting"] = threads
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m plastic.bench.cli ARGS``: ``plastic bench ARGS`` (its errors too)."""
    from plastic.cli import main as plastic_main

    return plastic_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
