"""What the speed benchmarks share: the synthetic setting and the reference learner (from
``tests/reference_learner.py``), alternating-round timing, and the command-line wrapper.

Timing: the functions compared are timed in alternating rounds (a, b, ..., then ..., b, a), so
that a machine whose load changes during the run slows all of them alike; the figures are
medians over rounds. Wall-clock and process CPU time are both reported: on a shared machine the
CPU time is the steadier one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# One direction only: benchmarks import the reference learner and the synthetic setting from
# tests/ (put on sys.path here); tests import nothing from benchmarks/.
_TESTS = str(Path(__file__).resolve().parents[1] / "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from reference_learner import (  # noqa: E402
    SUITE_SHAPES,
    ReferenceLearner,
    make_config,
    network_forward,
    synthetic_batch,
    update_flops,
)

__all__ = ["SUITE_SHAPES", "ReferenceLearner", "add_common_options", "make_config", "network_forward",
           "run_main", "synthetic_batch", "time_alternating", "update_flops"]


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """The options ``bench_learner.py`` and ``bench_acting.py`` share."""
    parser.add_argument("--preset", default="plastic", help="drq, plastic, plastic-dagger or drq+COMPONENTS")
    parser.add_argument("--suite", default="atari", choices=["atari", "minatar"],
                        help="atari: 4x84x84 Nature CNN; minatar: 4x10x10 one-conv encoder")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--num-actions", type=int, help="default: 18 (atari), 6 (minatar)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads; default 0: plastic's choice, 1 "
                        "(see benchmarks/README.md)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                        help="override a config key, e.g. --set network.noisy=false (repeatable)")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def untimed_calls(warmup: int, cuda_graph: bool) -> int:
    """Calls before timing starts: with ``train.cuda_graph`` at least the graph's eager warm-up
    steps and its recording (``GraphedStep``: 3 + 1), so that a replay is what is timed."""
    return max(warmup, 5) if cuda_graph else warmup


def time_alternating(functions: dict[str, Callable[[], Any]], device: torch.device, *, rounds: int,
                     per_round: int, warmup: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU milliseconds per call of each function, timed in alternating rounds."""
    for fn in functions.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    wall: dict[str, list[float]] = {k: [] for k in functions}
    cpu: dict[str, list[float]] = {k: [] for k in functions}
    names = list(functions)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            fn = functions[name]
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(per_round):
                fn()
            _sync(device)
            wall[name].append((time.perf_counter() - start_wall) / per_round * 1e3)
            cpu[name].append((time.process_time() - start_cpu) / per_round * 1e3)
    return {k: {"wall_ms": statistics.median(wall[k]), "cpu_ms": statistics.median(cpu[k]),
                "wall_ms_min": min(wall[k])} for k in functions}


def print_result(args: argparse.Namespace, bench: Callable[[], dict[str, Any]]) -> int:
    """Set the threads ``args`` asks for, run ``bench`` and print its result as one JSON line."""
    from plastic.runtime import configure_threads, keep_freed_memory

    threads = configure_threads(args.threads)
    keep_freed_memory()  # as a training run does
    result = bench()
    result["threads_setting"] = threads
    print(json.dumps(result))
    return 0


def run_main(main: Callable[[list[str] | None], int]) -> int:
    """``python benchmarks/bench_X.py ARGS``: ``main(ARGS)``, its errors in one line (exit 2) as
    ``plastic bench X ARGS`` reports them."""
    try:
        return main(None)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"plastic: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
