"""Time ``RainbowAgent.update`` against the straightforward reference, in the same process.

The two are timed in alternating rounds (fast, reference, fast, ...), so that a machine whose
load changes during the run slows both alike; the figures are medians over rounds. Wall-clock
and process CPU time are both reported: on a shared machine the CPU time is the steadier one.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from plastic.agents.rainbow import RainbowAgent, build_q_network, resolve_device
from plastic.bench.reference import ReferenceLearner
from plastic.configs import build_config
from plastic.configs.schema import Config
from plastic.nn.layers import NoisyLinear
from plastic.replay.buffer import Batch

SUITE_SHAPES: dict[str, dict[str, Any]] = {
    # Atari: the full action set (18) is the largest head any game needs.
    "atari": {"game": "pong", "obs_shape": (4, 84, 84), "num_actions": 18, "high": 256},
    # MinAtar's largest observation among the games the agent sees is 4x10x10 (breakout has 4
    # channels); 6 actions is MinAtar's full action set.
    "minatar": {"game": "breakout", "obs_shape": (4, 10, 10), "num_actions": 6, "high": 2},
}


def make_config(suite: str, preset: str, batch_size: int, device: str,
                overrides: dict[str, Any] | None = None) -> Config:
    if suite not in SUITE_SHAPES:
        raise ValueError(f"unknown suite {suite!r}; valid suites: {', '.join(SUITE_SHAPES)}")
    if batch_size < 1:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    return build_config(suite, SUITE_SHAPES[suite]["game"], preset,
                        overrides={"agent.batch_size": batch_size, "device": device, **(overrides or {})})


def synthetic_batch(obs_shape: tuple[int, ...], num_actions: int, batch_size: int, high: int,
                    seed: int = 0) -> Batch:
    """A replay-like batch: uint8 frames, 10-step returns, some terminals, importance weights."""
    rng = np.random.default_rng(seed)
    discount = np.where(rng.random(batch_size) < 0.1, 0.0, 0.99**10).astype(np.float32)
    return Batch(
        obs=rng.integers(0, high, (batch_size, *obs_shape), dtype=np.uint8),
        action=rng.integers(0, num_actions, batch_size),
        reward=rng.normal(0.0, 2.0, batch_size).astype(np.float32),
        discount=discount,
        next_obs=rng.integers(0, high, (batch_size, *obs_shape), dtype=np.uint8),
        weight=rng.uniform(0.3, 1.0, batch_size).astype(np.float32),
        index=np.arange(batch_size),
    )


def layer_macs(network: nn.Module, obs_shape: tuple[int, ...]) -> list[tuple[str, int]]:
    """Multiply-accumulates per sample of every conv and linear layer, in forward order."""
    macs: list[tuple[str, int]] = []
    hooks = []
    for name, module in network.named_modules():
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, (nn.Linear, NoisyLinear)):
            per_output = module.in_features
        else:
            continue
        hooks.append(module.register_forward_hook(
            lambda m, i, o, name=name, k=per_output: macs.append((name, o[0].numel() * k))))
    network.eval()
    with torch.no_grad():
        network(torch.zeros(1, *obs_shape))
    for hook in hooks:
        hook.remove()
    return macs


def update_flops(config: Config, obs_shape: tuple[int, ...], num_actions: int) -> float:
    """The FLOPs one update needs (a multiply-add is 2), convs and linear layers only.

    Target forward at s′, online forward at s′ (double Q), the clean forward and backward at s
    (weight gradients everywhere, input gradients below all but the first layer), and with SAM a
    second forward and backward with weight gradients only for the parameters SAM recomputes.
    """
    macs = layer_macs(build_q_network(config, obs_shape, num_actions), obs_shape)
    forward = sum(m for _, m in macs)
    first = macs[0][1]
    total = forward * (2 if config.agent.double_q else 1)  # target and online at s′
    total += forward + forward + (forward - first)  # clean pass: forward, weight grads, input grads
    if config.sam.enabled:
        sam = config.sam
        recomputed = {"encoder": ("encoder",), "head": ("head",), "all": ("encoder", "head")}[sam.scope]
        if sam.exclusion == "authors":
            recomputed = ("encoder", "head")
        weight_grads = sum(m for name, m in macs if name.split(".")[0] in recomputed)
        total += forward + weight_grads + (forward - first)
    return 2.0 * total * config.agent.batch_size


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
