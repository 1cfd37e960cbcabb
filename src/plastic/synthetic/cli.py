"""Command line of the synthetic experiments: ``plastic synthetic {input,label,grid} ...``.

The main CLI wires these in with :func:`add_synthetic_subcommands` (on the sub-parsers of its
``synthetic`` command) and dispatches to :func:`run_synthetic_from_args`. Standalone:
``python -m plastic.synthetic.cli {input,label,grid} ...``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plastic.synthetic.data import DATASETS, NORMALIZATIONS
from plastic.synthetic.models import METHODS
from plastic.synthetic.tasks import TASKS

# Grid sizes: (chunks, iterations per chunk, chunks between resets, seeds). "paper" is the
# paper's protocol (CIFAR-10 size, many GPU-hours); "digits" is the full grid recorded in
# benchmarks/synthetic (digits, ~1 hour on the shared 2-core CPU); "reduced" is the demo that
# finishes in under 10 minutes there. Explicit --chunks/--iters-per-chunk/--reset-every/--seeds win.
GRID_PRESETS: dict[str, tuple[int, int, int, int]] = {
    "paper": (100, 500, 10, 3),
    "digits": (10, 40, 5, 3),
    "reduced": (10, 10, 5, 1),
}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_common(parser: argparse.ArgumentParser, chunks_default: int | None) -> None:
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default="auto",
        help="cifar10, digits (offline, scikit-learn), or auto: CIFAR-10 if found under "
        "--data-dir, else digits (default)",
    )
    parser.add_argument("--data-dir", default=None, help="where CIFAR-10 is (or is downloaded to)")
    parser.add_argument("--no-download", action="store_true", help="never try to download CIFAR-10")
    single = chunks_default is not None  # a single run (input, label) rather than the grid
    parser.add_argument("--chunks", type=_positive_int, default=chunks_default,
                        help=f"stages of training (default {chunks_default}, the paper's)" if single else
                        "stages of training (default: the --preset's)")
    parser.add_argument("--iters-per-chunk", type=_positive_int, default=None,
                        help="SGD updates per chunk (default 500, the paper's; 100 x 500 updates take "
                        "hours on a CPU, see the README)" if single else
                        "SGD updates per chunk (default: the --preset's)")
    parser.add_argument("--batch-size", type=_positive_int, default=128)
    parser.add_argument("--lr", type=float, default=None, help="default: 1e-3 input, 1e-2 label")
    parser.add_argument("--weight-decay", type=float, default=None, help="default: 0 input, 1e-3 label")
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--rho", type=float, default=0.1, help="SAM radius")
    parser.add_argument(
        "--sam-scope",
        choices=("all", "backbone"),
        default="all",
        help="parameters SAM perturbs: the whole network (authors' synthetic code) or the backbone",
    )
    parser.add_argument("--reset-every", type=_positive_int, default=None, help="chunks between resets (10)")
    parser.add_argument(
        "--fidelity",
        choices=("authors", "intent"),
        default="authors",
        help="authors (default): the update of the authors' synthetic code, which produced the "
        "paper's numbers; intent: the method as the paper states it. Sets the three options below "
        "unless they are given",
    )
    parser.add_argument(
        "--reset-schedule",
        choices=("before_chunk", "after_chunk"),
        default=None,
        help="reset the head before chunks 10, 20, ... (intent) or after chunks 0, 10, 20, ... (authors)",
    )
    parser.add_argument(
        "--normalization",
        choices=NORMALIZATIONS,
        default=None,
        help="standardise inputs by the data's own mean/std (intent) or the fixed CIFAR-10 constants "
        "of the authors' code (cifar)",
    )
    parser.add_argument(
        "--reset-momentum",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a Reset clears the head's SGD momentum (intent) or keeps it (--no-reset-momentum, authors)",
    )
    parser.add_argument(
        "--flush-denormal",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="flush subnormal floats to zero on the CPU while training (default; faster, the same "
        "results in our measurements); --no-flush-denormal keeps IEEE arithmetic",
    )
    parser.add_argument("--hessian", action="store_true", help="also log the top Hessian eigenvalue")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def add_synthetic_subcommands(subparsers: Any) -> None:
    """Add ``input``, ``label`` and ``grid`` to an ``ArgumentParser.add_subparsers()`` object."""
    for task in TASKS:
        p = subparsers.add_parser(
            task,
            help=f"one run of the {task}-adaptation experiment",
            description=f"One run of PLASTIC's {task}-adaptation experiment.",
        )
        p.add_argument("--method", required=True, choices=tuple(METHODS))
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", default=None, help="run dir (default runs/synthetic/TASK/METHOD/seed_N)")
        p.add_argument("--threads", type=_positive_int, default=1,
                       help="torch threads (default 1: on a busy CPU a second thread made a run 3x "
                            "slower; give more only where the cores are the run's own)")
        _add_common(p, chunks_default=100)
        p.set_defaults(synthetic_command=task)

    g = subparsers.add_parser(
        "grid",
        help="all methods x both tasks x seeds, in parallel, then table and figures",
        description="Run every method on both tasks for several seeds (skipping finished runs), "
        "then write results.md, results.json, final_accuracy.png and accuracy_curves.png.",
    )
    g.add_argument(
        "--preset",
        choices=tuple(GRID_PRESETS),
        default="paper",
        help="chunks x iterations per chunk: "
        + "; ".join(
            f"{k}: {c} chunks x {i} iters, reset every {r}, {s} seed(s)"
            for k, (c, i, r, s) in GRID_PRESETS.items()
        )
        + " (explicit options override)",
    )
    g.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=list(METHODS))
    g.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    g.add_argument("--seeds", type=_positive_int, default=None, help="number of seeds")
    g.add_argument("--first-seed", type=int, default=0)
    g.add_argument("--workers", type=_positive_int, default=None, help="default: all cores")
    g.add_argument("--out", default="runs/synthetic_grid")
    g.add_argument("--report-only", action="store_true", help="only rebuild table and figures from --out")
    _add_common(g, chunks_default=None)
    g.set_defaults(synthetic_command="grid")


def _config_from_args(args: argparse.Namespace, task: str, method: str, seed: int) -> Any:
    from plastic.synthetic.experiment import SyntheticConfig

    return SyntheticConfig(
        task=task,
        method=method,
        dataset=args.dataset,
        data_dir=args.data_dir,
        chunks=args.chunks,
        iters_per_chunk=args.iters_per_chunk,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        momentum=args.momentum,
        rho=args.rho,
        sam_scope=args.sam_scope,
        reset_every=args.reset_every,
        seed=seed,
        hessian=args.hessian,
        device=args.device,
        fidelity=args.fidelity,
        reset_schedule=args.reset_schedule,
        normalization=args.normalization,
        reset_momentum=args.reset_momentum,
        flush_denormal=args.flush_denormal,
    )


def run_synthetic_from_args(args: argparse.Namespace) -> int:
    """Run what the parsed ``args`` ask for; returns a process exit code."""
    command = getattr(args, "synthetic_command", None)
    if command not in (*TASKS, "grid"):
        raise ValueError(
            f"unknown synthetic command {command!r}; valid choices: {', '.join((*TASKS, 'grid'))}"
        )
    from plastic.synthetic.data import load_dataset
    from plastic.synthetic.experiment import run_synthetic
    from plastic.synthetic.grid import run_grid, write_report

    if command == "grid":
        if args.report_only:
            write_report(args.out)
            return 0
        chunks, iters, reset_every, n_seeds = GRID_PRESETS[args.preset]
        args.chunks = args.chunks or chunks
        args.iters_per_chunk = args.iters_per_chunk or iters
        args.reset_every = args.reset_every or reset_every
        args.seeds = args.seeds or n_seeds
        base = _config_from_args(args, TASKS[0], "vanilla", 0)
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        run_grid(
            args.out,
            base,
            args.methods,
            args.tasks,
            seeds,
            workers=args.workers,
            download=not args.no_download,
        )
        print(f"[grid] table and figures in {args.out}", flush=True)
        return 0

    import torch

    from plastic.runtime import denormals_flushed

    torch.set_num_threads(args.threads)
    args.iters_per_chunk = args.iters_per_chunk or GRID_PRESETS["paper"][1]
    args.reset_every = args.reset_every or GRID_PRESETS["paper"][2]
    config = _config_from_args(args, command, args.method, args.seed)
    out = args.out or str(Path("runs/synthetic") / command / args.method / f"seed_{args.seed}")
    # entered before the first parallel op: torch's worker threads copy the setting when they start
    with denormals_flushed(args.flush_denormal):
        dataset = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
        summary = run_synthetic(config, out, dataset=dataset, verbose=True)
    print(
        f"[synthetic] final test acc {summary['final_test_acc']:.4f}, mean over chunks "
        f"{summary['mean_test_acc']:.4f}, resets {summary['resets']} -> {out}",
        flush=True,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plastic.synthetic.cli ARGS``: ``plastic synthetic ARGS`` (its errors too)."""
    from plastic.cli import main as plastic_main

    return plastic_main(["synthetic", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
