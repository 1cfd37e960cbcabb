"""The ``plastic`` command line: ``plastic train | synthetic | bench | demo | info``."""

from __future__ import annotations

import argparse
import json
import sys


def _info(_: argparse.Namespace) -> int:
    import platform

    import torch

    import plastic

    print(json.dumps({
        "plastic": plastic.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "threads": torch.get_num_threads(),
    }))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from plastic.demo import run_demo

    run_demo(stages=args.stages, iters=args.iters, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plastic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="versions and devices")
    info.set_defaults(func=_info)

    demo = sub.add_parser("demo", help="a short demonstration of SAM, LN, CReLU, Reset and metrics")
    demo.add_argument("--stages", type=int, default=4)
    demo.add_argument("--iters", type=int, default=40)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as error:
        print(f"plastic: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
