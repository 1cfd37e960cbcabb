"""What each speed change of the learner update gains: the fast update with one change undone.

Each variant is timed in alternating rounds against the unchanged fast update in the same
process (so that a change in the machine's load hits both), and reported as a ratio
``variant_ms / fast_ms`` (> 1: the change being undone was worth that factor).

    python benchmarks/bench_learner_ablation.py --preset plastic --suite atari

Variants (each undoes one change):
  nchw              convolutions in NCHW instead of channels_last
  adam_for_loop     Adam's per-tensor for-loop instead of fused Adam
  adam_foreach      Adam's foreach implementation instead of fused Adam
  noisy_rebuilt     noisy weights rebuilt on every forward pass (not once per update)
  sam_all_grads     SAM's second pass computes every gradient (not only the encoder's)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Callable, Iterator
from unittest import mock

import torch

from harness import SUITE_SHAPES, make_config, synthetic_batch, time_alternating
from plastic.agents import rainbow
from plastic.agents.rainbow import RainbowAgent
from plastic.nn import networks


def _ignore_head_parameters(self, x, head_parameters=None):
    return self.head(self.features(x))


def _adam(options: dict[str, bool]) -> contextlib.AbstractContextManager:
    return mock.patch.object(rainbow, "_adam_options", lambda device: options)


PATCHES: dict[str, tuple[Callable[[], contextlib.AbstractContextManager], bool]] = {
    # name: (patch, whether the patch matters at agent construction rather than at each update)
    "nchw": (lambda: mock.patch.object(networks, "CHANNELS_LAST_ON_CPU", False), False),
    "adam_for_loop": (lambda: _adam({"foreach": False}), True),
    "adam_foreach": (lambda: _adam({"foreach": True}), True),
    "noisy_rebuilt": (lambda: mock.patch.object(networks.QNetwork, "forward", _ignore_head_parameters),
                      False),
    "sam_all_grads": (lambda: mock.patch.object(
        RainbowAgent, "_params_recomputed_by_sam", lambda self: list(self._online_params)), True),
}


@contextlib.contextmanager
def nothing() -> Iterator[None]:
    yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="plastic")
    parser.add_argument("--suite", default="atari", choices=list(SUITE_SHAPES))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=2)
    parser.add_argument("--variants", nargs="*", default=list(PATCHES), choices=list(PATCHES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shapes = SUITE_SHAPES[args.suite]
    config = make_config(args.suite, args.preset, args.batch_size, "cpu")
    batch = synthetic_batch(shapes["obs_shape"], shapes["num_actions"], args.batch_size, shapes["high"])

    def agent() -> RainbowAgent:
        torch.manual_seed(0)
        return RainbowAgent(config, shapes["obs_shape"], shapes["num_actions"], torch.device("cpu"))

    for name in args.variants:
        if name == "sam_all_grads" and not config.sam.enabled:
            continue
        make_patch, at_construction = PATCHES[name]
        fast = agent()
        with make_patch() if at_construction else nothing():
            variant = agent()

        def run_variant(variant=variant, make_patch=make_patch, at_construction=at_construction):
            with nothing() if at_construction else make_patch():
                variant.update(batch)

        load = os.getloadavg()[0]
        times = time_alternating({"fast": lambda fast=fast: fast.update(batch), "variant": run_variant},
                                 torch.device("cpu"), rounds=args.rounds, per_round=args.per_round,
                                 warmup=1)
        print(json.dumps({
            "bench": "learner_ablation", "preset": args.preset, "suite": args.suite,
            "batch_size": args.batch_size, "threads": args.threads, "undone": name,
            "fast_cpu_ms": round(times["fast"]["cpu_ms"], 2),
            "variant_cpu_ms": round(times["variant"]["cpu_ms"], 2),
            "cpu_ratio": round(times["variant"]["cpu_ms"] / times["fast"]["cpu_ms"], 3),
            "wall_ratio": round(times["variant"]["wall_ms"] / times["fast"]["wall_ms"], 3),
            "loadavg_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
        }), flush=True)


if __name__ == "__main__":
    main()
