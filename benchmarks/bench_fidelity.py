"""What the "authors" fidelity profile costs: the update of each profile, timed side by side.

For each preset, the update under ``fidelity=intent`` (the paper's method) and ``fidelity=authors``
(the authors' update) is timed in alternating rounds in one process, so that the machine's load
hits both alike; with SAM, also the authors' update after its first Reset, when SAM perturbs and
steps the whole network (about 80% of a run's updates at replay ratio 2). Ratios are
``variant_ms / intent_ms``.

    python benchmarks/bench_fidelity.py --suite atari --presets drq,plastic,plastic-dagger
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import torch

from harness import SUITE_SHAPES, make_config, synthetic_batch, time_alternating
from plastic.agents.rainbow import RainbowAgent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="drq,plastic,plastic-dagger")
    parser.add_argument("--suite", default="atari", choices=list(SUITE_SHAPES))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shapes = SUITE_SHAPES[args.suite]
    batch = synthetic_batch(shapes["obs_shape"], shapes["num_actions"], args.batch_size, shapes["high"])

    def agent(preset: str, fidelity: str) -> RainbowAgent:
        torch.manual_seed(0)
        config = make_config(args.suite, preset, args.batch_size, "cpu", {"fidelity": fidelity})
        return RainbowAgent(config, shapes["obs_shape"], shapes["num_actions"], torch.device("cpu"))

    for preset in args.presets.split(","):
        agents = {"intent": agent(preset, "intent"), "authors": agent(preset, "authors")}
        if agents["authors"].config.sam.enabled:
            after_reset = agent(preset, "authors")
            after_reset._after_reset()  # SAM on the whole network, as after the first Reset
            agents["authors_after_reset"] = after_reset
        load = os.getloadavg()[0]
        times = time_alternating({name: (lambda a=a: a.update(batch)) for name, a in agents.items()},
                                 torch.device("cpu"), rounds=args.rounds, per_round=args.per_round,
                                 warmup=1)
        base = times["intent"]["cpu_ms"]
        print(json.dumps({
            "bench": "fidelity", "preset": preset, "suite": args.suite, "batch_size": args.batch_size,
            "threads": args.threads, "cpu": platform.processor() or platform.machine(),
            **{f"{name}_cpu_ms": round(t["cpu_ms"], 1) for name, t in times.items()},
            **{f"{name}_ratio": round(t["cpu_ms"] / base, 3) for name, t in times.items()
               if name != "intent"},
            "loadavg_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
        }), flush=True)


if __name__ == "__main__":
    main()
