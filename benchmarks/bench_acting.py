"""Time acting: one observation through the acting network (noise on), optionally an env step.

The fast path is ``RainbowAgent.act``; the reference applies the same target network the
straightforward way (NCHW, the noisy weights rebuilt on every call). With ``with_env`` each step
also steps a real environment (Atari: ALE with the Atari-100k protocol; MinAtar), and the
environment alone is timed too, so the network's share is visible.
One JSON line (keys: benchmarks/README.md).

    python benchmarks/bench_acting.py --preset plastic --suite atari --env   # = plastic bench acting ...
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from harness import (
    SUITE_SHAPES,
    add_common_options,
    make_config,
    network_forward,
    print_result,
    run_main,
    time_alternating,
)
from plastic.agents.rainbow import RainbowAgent
from plastic.configs import parse_assignments
from plastic.nn.layers import NoisyLinear
from plastic.runtime import resolve_device


def bench_acting(preset: str, *, suite: str = "atari", device: str = "cpu", num_actions: int | None = None,
                 steps: int = 300, rounds: int = 3, with_env: bool = False, reference: bool = True,
                 overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Steps per second of acting for ``preset`` (and of the reference, and of the env alone)."""
    if steps < 1 or rounds < 1:
        raise ValueError(f"steps and rounds must be positive, got steps={steps}, rounds={rounds}")
    config = make_config(suite, preset, 32, device, overrides)
    shapes = SUITE_SHAPES[suite]
    dev = resolve_device(device)
    env = None
    if with_env:
        from plastic.envs import make_env

        env = make_env(suite, config.game, 0, train=True)
        obs_shape, actions = env.observation_space.shape, int(env.action_space.n)
    else:
        obs_shape, actions = shapes["obs_shape"], num_actions or shapes["num_actions"]
    torch.manual_seed(0)
    agent = RainbowAgent(config, obs_shape, actions, dev)
    network = agent.target if config.agent.act_with_target else agent.online
    params = {k: v.detach() for k, v in network.named_parameters()}
    noise = {name: (m.eps_in, m.eps_out) for name, m in network.named_modules() if isinstance(m, NoisyLinear)}
    rng = np.random.default_rng(0)
    state = {"obs": env.reset(seed=0)[0] if env is not None
             else rng.integers(0, shapes["high"], obs_shape, dtype=np.uint8)}

    def env_step(action: int) -> None:
        if env is None:
            return
        obs, _, terminated, truncated, _ = env.step(action)
        state["obs"] = env.reset()[0] if terminated or truncated else obs

    def fast() -> None:
        env_step(int(agent.act(state["obs"][None])[0]))

    def slow() -> None:
        with torch.no_grad():
            x = torch.as_tensor(state["obs"][None], device=dev).float() / config.network.input_scale
            logits = network_forward(config, params, x, noise if config.network.noisy else None, actions)
            q = (torch.softmax(logits, -1) * agent.support).sum(-1)
        env_step(int(q.argmax(1).item()))

    functions: dict[str, Callable[[], Any]] = {"fast": fast}
    if reference:
        functions["reference"] = slow
    if env is not None:
        functions["env"] = lambda: env_step(int(rng.integers(actions)))
    load = os.getloadavg()[0]
    times = time_alternating(functions, dev, rounds=rounds, per_round=steps, warmup=5)
    result: dict[str, Any] = {
        "bench": "acting", "preset": preset, "suite": suite, "obs_shape": list(obs_shape),
        "num_actions": actions, "device": str(dev), "threads": torch.get_num_threads(),
        "with_env": with_env, "ms_per_step": round(times["fast"]["wall_ms"], 3),
        "steps_per_s": round(1e3 / times["fast"]["wall_ms"], 1),
        "cpu_steps_per_s": round(1e3 / times["fast"]["cpu_ms"], 1),
    }
    if reference:
        ref = times["reference"]
        result.update({
            "reference_steps_per_s": round(1e3 / ref["wall_ms"], 1),
            "reference_cpu_steps_per_s": round(1e3 / ref["cpu_ms"], 1),
            "speedup": round(ref["wall_ms"] / times["fast"]["wall_ms"], 2),
            "cpu_speedup": round(ref["cpu_ms"] / times["fast"]["cpu_ms"], 2),
        })
    if env is not None:
        result["env_only_steps_per_s"] = round(1e3 / times["env"]["wall_ms"], 1)
        env.close()
    result.update({"rounds": rounds, "steps_per_round": steps,
                   "loadavg_1m": [round(load, 2), round(os.getloadavg()[0], 2)], "torch": torch.__version__})
    return result


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` (default: the command line), run the benchmark, print its JSON line."""
    parser = argparse.ArgumentParser(
        prog=prog, description="time one observation through the network (+ env step)")
    add_common_options(parser)
    parser.add_argument("--steps", type=int, default=300, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--env", action="store_true", help="also step a real environment")
    parser.add_argument("--no-reference", action="store_true", help="time the fast path only")
    args = parser.parse_args(argv)
    return print_result(args, lambda: bench_acting(
        args.preset, suite=args.suite, device=args.device, num_actions=args.num_actions,
        steps=args.steps, rounds=args.rounds, with_env=args.env,
        reference=not args.no_reference, overrides=parse_assignments(args.set),
    ))


if __name__ == "__main__":
    raise SystemExit(run_main(main))
