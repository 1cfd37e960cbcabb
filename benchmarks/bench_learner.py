"""Time ``RainbowAgent.update`` against the straightforward reference, in the same process.

The two are timed in alternating rounds (fast, reference, fast, ...), so that a machine whose
load changes during the run slows both alike; the figures are medians over rounds. Wall-clock
and process CPU time are both reported: on a shared machine the CPU time is the steadier one.
One JSON line (keys: benchmarks/README.md).

    python benchmarks/bench_learner.py --preset plastic --suite atari      # = plastic bench learner ...
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import torch

from harness import (
    SUITE_SHAPES,
    ReferenceLearner,
    add_common_options,
    make_config,
    print_result,
    run_main,
    synthetic_batch,
    time_alternating,
    untimed_calls,
    update_flops,
)
from plastic.agents.rainbow import RainbowAgent
from plastic.configs import parse_assignments
from plastic.runtime import resolve_device


def bench_learner(preset: str, *, suite: str = "atari", batch_size: int = 32, device: str = "cpu",
                  num_actions: int | None = None, rounds: int = 5, per_round: int = 3,
                  warmup: int = 2, reference: bool = True,
                  overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Time the agent's update (and the reference's) for ``preset``; one dict of results."""
    config = make_config(suite, preset, batch_size, device, overrides)
    shapes = SUITE_SHAPES[suite]
    obs_shape, actions = shapes["obs_shape"], num_actions or shapes["num_actions"]
    dev = resolve_device(device)
    torch.manual_seed(0)
    agent = RainbowAgent(config, obs_shape, actions, dev)
    batch = synthetic_batch(obs_shape, actions, batch_size, shapes["high"])
    functions: dict[str, Callable[[], Any]] = {"fast": lambda: agent.update(batch)["priority"].cpu()}
    if reference:
        learner = ReferenceLearner.from_agent(agent)
        functions["reference"] = lambda: learner.update(batch)["priority"].cpu()
    warmup = untimed_calls(warmup, config.train.cuda_graph)
    load_before = os.getloadavg()[0]
    times = time_alternating(functions, dev, rounds=rounds, per_round=per_round, warmup=warmup)
    flops = update_flops(config, obs_shape, actions)
    fast = times["fast"]
    result: dict[str, Any] = {
        "bench": "learner", "preset": preset, "suite": suite, "obs_shape": list(obs_shape),
        "num_actions": actions, "batch_size": batch_size, "device": str(dev),
        "threads": torch.get_num_threads(),
        "ms_per_update": round(fast["wall_ms"], 2), "cpu_ms_per_update": round(fast["cpu_ms"], 2),
        "min_ms_per_update": round(fast["wall_ms_min"], 2),
        "gflop_per_update": round(flops / 1e9, 3),
        "gflops": round(flops / fast["wall_ms"] / 1e6, 2),
    }
    if reference:
        ref = times["reference"]
        result.update({
            "reference_ms_per_update": round(ref["wall_ms"], 2),
            "reference_cpu_ms_per_update": round(ref["cpu_ms"], 2),
            "reference_min_ms_per_update": round(ref["wall_ms_min"], 2),
            "reference_gflops": round(flops / ref["wall_ms"] / 1e6, 2),
            "speedup": round(ref["wall_ms"] / fast["wall_ms"], 2),
            "cpu_speedup": round(ref["cpu_ms"] / fast["cpu_ms"], 2),
        })
    result.update({"rounds": rounds, "updates_per_round": per_round,
                   "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                   "torch": torch.__version__})
    return result


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` (default: the command line), run the benchmark, print its JSON line."""
    parser = argparse.ArgumentParser(prog=prog, description="time RainbowAgent.update against the reference")
    add_common_options(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    parser.add_argument("--per-round", type=int, default=3, help="updates per round")
    parser.add_argument("--no-reference", action="store_true", help="time the fast update only")
    args = parser.parse_args(argv)
    return print_result(args, lambda: bench_learner(
        args.preset, suite=args.suite, batch_size=args.batch_size, device=args.device,
        num_actions=args.num_actions, rounds=args.rounds, per_round=args.per_round,
        reference=not args.no_reference, overrides=parse_assignments(args.set),
    ))


if __name__ == "__main__":
    raise SystemExit(run_main(main))
