"""The ``plastic`` command line: ``plastic train | evaluate | synthetic | sweep | status | report | bench |
demo | info``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from plastic.errors import MissingDependencyError
from plastic.suites import SUITES


def _info(args: argparse.Namespace) -> int:
    from plastic.info import gather, info_text

    info = gather(args.suites)
    print(json.dumps(info) if args.json else info_text(info))
    return 0 if all(check["ok"] for check in info["suites"].values()) else 1


def _demo(args: argparse.Namespace) -> int:
    from plastic.demo import run_demo

    run_demo(stages=args.stages, iters=args.iters, seed=args.seed)
    return 0


TRAIN_EXAMPLES = """examples:
  plastic train minatar --game breakout --preset plastic        # the CPU-scale testbed
  plastic train atari --game pong --preset drq+sam+reset --set sam.rho=0.05 --seed 1
  plastic train dmc --task cartpole-swingup --obs state --steps 8000
  plastic train minatar --game breakout --print-config          # the resolved config; runs nothing

Run the same command again to resume a stopped run: from the step it stopped at after Ctrl-C or
SIGTERM (it checkpoints there first), from its last checkpoint after a crash. On a finished run it
only reports, and with a larger --steps it extends the run from its final checkpoint. One process
at a time may run a run directory."""

# Config keys that name a run and its directory: a flag or argument sets each, never --set.
FLAG_KEYS = {"suite": "plastic train {} ...", "game": "--game {}", "preset": "--preset {}",
             "seed": "--seed {}"}


def _refuse_flag_keys(assignments: dict[str, str]) -> None:
    for key, usage in FLAG_KEYS.items():
        if key in assignments:
            value = assignments[key]
            raise ValueError(f"--set {key}={value}: {key} names the run and its directory; "
                             f"use {usage.format(value)} instead")


def _train(args: argparse.Namespace) -> int:
    from plastic.configs import build_config, parse_assignments

    overrides: dict[str, object] = {}
    if args.replay_ratio is not None:
        overrides["train.replay_ratio"] = args.replay_ratio
    if args.steps is not None:
        overrides["train.steps"] = args.steps
    if args.device is not None:
        overrides["device"] = args.device
    if args.obs is not None:
        if args.suite != "dmc":
            raise ValueError(f"--obs applies to dmc only; {args.suite} observations are pixels")
        overrides["env.obs"] = args.obs
    assignments = parse_assignments(args.set or [])
    _refuse_flag_keys(assignments)
    overrides.update(assignments)
    config = build_config(args.suite, args.game, args.preset, seed=args.seed, overrides=overrides)
    if args.print_config:
        print(config.to_json())
        return 0
    from plastic.train.evaluate import without_per_game
    from plastic.train.loop import train  # imports torch: after the quick exits

    # State-observation DMC runs get their own tree, so they never collide with pixel runs.
    suite_dir = "dmc-state" if config.suite == "dmc" and config.env.obs == "state" else args.suite
    run_dir = Path(args.run_dir) if args.run_dir else (
        Path("runs") / suite_dir / config.game / args.preset / f"seed{args.seed}"
    )
    summary = train(config, run_dir.resolve(), progress=None if not args.no_progress else False)
    print(json.dumps(without_per_game(summary)))
    return 0


BENCH_DESCRIPTION = """Speed of the learner update and of acting, as one JSON line: runs the source
checkout's benchmarks/bench_WHAT.py with ARGS (`plastic bench WHAT --help` lists them).

  learner  time RainbowAgent.update against the reference
  acting   time one observation through the network (+ env step)"""


def benchmarks_dir() -> Path:
    """The source checkout's ``benchmarks/``, beside ``src/``; a wheel install has none."""
    import plastic

    return Path(plastic.__file__).resolve().parents[2] / "benchmarks"


def _bench(args: argparse.Namespace) -> int:
    """``plastic bench WHAT ARGS``: ``main(ARGS)`` of ``benchmarks/bench_WHAT.py``, in this process."""
    import importlib

    directory = benchmarks_dir()
    if not (directory / f"bench_{args.bench}.py").is_file():
        raise ValueError(f"plastic bench needs a source checkout of plastic (git clone the repository, "
                         f"then pip install -e . in it): {directory}/bench_{args.bench}.py not found")
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    runner = importlib.import_module(f"bench_{args.bench}")
    return runner.main(args.args, prog=f"plastic bench {args.bench}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``plastic`` parser. ``command``: the subcommand about to run; the subcommands whose
    definitions import torch (synthetic) are then only named, unless they are the one, so
    that ``plastic --help`` stays quick. None: every subcommand in full."""
    def full(name: str) -> bool:
        return command is None or command == name

    parser = argparse.ArgumentParser(prog="plastic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser(
        "info", help="versions, CPU, GPUs, and whether each suite's environments work here",
        description="Versions, the CPU and GPUs, and a check of each suite: its environment is made "
                    "and reset as a run would (DMC from pixels, so rendering is tried); where that "
                    "fails, what to install. Exits 1 when a checked suite is not usable.")
    info.add_argument("--suite", dest="suites", action="append", choices=list(SUITES),
                      help="check only this suite (repeatable; default: all)")
    info.add_argument("--json", action="store_true", help="one JSON object instead of text")
    info.set_defaults(func=_info)

    train = sub.add_parser("train", help="train an agent (Atari-100k, MinAtar, DeepMind Control)",
                           epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("suite", choices=list(SUITES))
    train.add_argument("--game", "--task", dest="game", required=True,
                       help="e.g. pong (Atari), breakout (MinAtar), walker-run (DMC)")
    train.add_argument("--preset", default="plastic",
                       help="drq, plastic, plastic-dagger, or drq+COMPONENTS (ln, crelu, sam, reset)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--obs", choices=["pixels", "state"], help="dmc: observations (default pixels)")
    train.add_argument("--replay-ratio", type=float,
                       help="updates per agent step (default: Atari/MinAtar 2, DMC 1)")
    train.add_argument("--steps", type=int,
                       help="agent steps (default: Atari/MinAtar 100k, DMC 2M env steps / action repeat)")
    train.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    train.add_argument("--run-dir", help="default: runs/SUITE/GAME/PRESET/seedN (dmc --obs state: "
                                         "runs/dmc-state/...)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override any config key, e.g. --set sam.rho=0.05 (repeatable)")
    train.add_argument("--no-progress", action="store_true", help="log lines instead of a bar")
    train.add_argument("--print-config", action="store_true",
                       help="print the resolved config as JSON and exit (no run directory)")
    train.set_defaults(func=_train)

    synthetic = sub.add_parser(
        "synthetic", help="the paper's input/label adaptation experiments (CIFAR-10 or digits)")
    if full("synthetic"):
        from plastic.synthetic.cli import add_synthetic_subcommands, run_synthetic_from_args

        add_synthetic_subcommands(synthetic.add_subparsers(dest="synthetic_command", required=True))
        synthetic.set_defaults(func=run_synthetic_from_args)

    from plastic.experiments.cli import add_experiment_subcommands

    add_experiment_subcommands(sub)  # plastic sweep | status | report

    bench = sub.add_parser("bench", help="speed of the learner update and of acting (JSON)",
                           description=BENCH_DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("bench", choices=["learner", "acting"], metavar="WHAT")
    bench.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="the benchmark's options")
    bench.set_defaults(func=_bench)

    from plastic.train.evaluate_cli import add_evaluate_subcommand

    add_evaluate_subcommand(sub)  # plastic evaluate RUN_DIR

    demo = sub.add_parser("demo", help="a short demonstration of SAM, LN, CReLU, Reset and metrics")
    demo.add_argument("--stages", type=int, default=4)
    demo.add_argument("--iters", type=int, default=40)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def _command(argv: list[str]) -> str:
    """The subcommand in ``argv`` (the top-level parser takes no option but --help)."""
    return next((a for a in argv if not a.startswith("-")), "")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command(argv)).parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `plastic ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt as stop:  # a run says where it will resume (RunInterrupted)
        print(f"plastic: {stop or 'interrupted'}", file=sys.stderr)
        return getattr(stop, "exit_code", 130)  # 130 for Ctrl-C, 143 for SIGTERM
    # one line, never a traceback (MissingDependencyError: an optional library is missing; its
    # message says what to install)
    except (ValueError, OSError, RuntimeError, MissingDependencyError) as error:
        print(f"plastic: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
