"""Page faults and CPU time of the Atari update with glibc's default allocator and with
``plastic.runtime.keep_freed_memory()``, in alternating child processes (the setting is for a
whole process and cannot be undone, so each side gets its own).

    python benchmarks/bench_memory.py --preset plastic --pairs 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from harness import make_config, run_main, synthetic_batch


def measure(preset: str, keep: bool, updates: int) -> dict[str, float]:
    import torch

    from plastic.agents.rainbow import RainbowAgent
    from plastic.runtime import keep_freed_memory

    torch.set_num_threads(1)
    agent = RainbowAgent(make_config("atari", preset, 32, "cpu"), (4, 84, 84), 18, torch.device("cpu"))
    batch = synthetic_batch((4, 84, 84), 18, 32, 256)
    if keep:
        keep_freed_memory()
    for _ in range(3):
        agent.update(batch)
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
    for _ in range(updates):
        agent.update(batch)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"faults_per_update": (after.ru_minflt - before.ru_minflt) / updates,
            "cpu_ms_per_update": (time.process_time() - started) * 1000 / updates,
            "sys_ms_per_update": (after.ru_stime - before.ru_stime) * 1000 / updates}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="plastic")
    parser.add_argument("--pairs", type=int, default=3, help="alternating default/kept process pairs")
    parser.add_argument("--updates", type=int, default=10, help="timed updates per process")
    parser.add_argument("--child", choices=["default", "kept"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.preset, args.child == "kept", args.updates)))
        return 0
    results: dict[str, list[dict[str, float]]] = {"default": [], "kept": []}
    for _ in range(args.pairs):
        for side in results:
            out = subprocess.run([sys.executable, __file__, "--preset", args.preset, "--updates",
                                  str(args.updates), "--child", side],
                                 capture_output=True, text=True, check=True).stdout
            results[side].append(json.loads(out))
            print(json.dumps({"preset": args.preset, "allocator": side, **results[side][-1]}), flush=True)
    medians = {side: statistics.median(r["cpu_ms_per_update"] for r in runs)
               for side, runs in results.items()}
    print(json.dumps({"preset": args.preset, "median_cpu_ms": medians,
                      "default_over_kept": round(medians["default"] / medians["kept"], 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
