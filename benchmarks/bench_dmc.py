"""DeepMind Control speed: environments (render, pixel and state steps) and DrQ (SAC) updates.

Run: ``python benchmarks/bench_dmc.py [--tasks walker-run] [--presets drq plastic]
[--batch-size 512] [--skip-env] [--device cuda [--cuda-graph]]``. Prints one JSON object per line:

- the lines of ``bench_dmc_env.py`` for each task (render frames/s; pixel and state env steps/s,
  each against raw dm_control doing the same work);
- ``update``: ms per ``DrQSACAgent.update`` from 64x64 pixels (3 stacked frames, walker-run's 6
  actions) for each preset, wall and process CPU time, against the same agent with its critic
  in plain NCHW memory instead of channels_last (``baseline_*``; the two alternate so that
  load changes hit both), and the same update from state observations for scale; with
  ``--cuda-graph`` (a GPU) the baseline is instead the same agent's eager update and the fast one
  its update replayed as CUDA graphs (``train.cuda_graph``);
- ``encoder_gflop_per_update``: the encoder convolutions' FLOPs in one pixel update (a
  multiply-add is 2; the MLPs are left out), and ``gflops_cpu``, that over the CPU time.

The first line records the GL backend, threads and load: the machine is shared, so compare
figures of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from bench_dmc_env import bench_task, emit
from plastic.agents.drq_sac import DrQSACAgent
from plastic.configs import build_config
from plastic.envs.dmc import select_mujoco_gl
from plastic.replay.buffer import Batch

PIXEL_SHAPE = (9, 64, 64)
STATE_SHAPE = (24,)  # walker-run's state vector
ACTIONS = 6


def random_batch(shape: tuple[int, ...], batch_size: int, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    if len(shape) == 3:
        obs, next_obs = (rng.integers(0, 256, (batch_size, *shape), dtype=np.uint8) for _ in range(2))
    else:
        obs, next_obs = (rng.normal(size=(batch_size, *shape)).astype(np.float32) for _ in range(2))
    return Batch(obs=obs, next_obs=next_obs,
                 action=rng.uniform(-1, 1, (batch_size, ACTIONS)).astype(np.float32),
                 reward=rng.random(batch_size).astype(np.float32),
                 discount=np.full(batch_size, 0.99, np.float32),
                 weight=np.ones(batch_size, np.float32), index=np.arange(batch_size))


def make_agent(preset: str, shape: tuple[int, ...], batch_size: int, *, nchw: bool = False,
               device: str = "cpu", cuda_graph: bool = False) -> DrQSACAgent:
    obs = "pixels" if len(shape) == 3 else "state"
    config = build_config("dmc", "walker-run", preset, overrides={
        "env.obs": obs, "sac.batch_size": batch_size, "device": device, "train.cuda_graph": cuda_graph})
    torch.manual_seed(0)
    agent = DrQSACAgent(config, shape, ACTIONS, torch.device(device))
    if nchw:  # the straightforward path: default memory format for the convolutions
        for critic in (agent.critic, agent.target_critic):
            critic.to(memory_format=torch.contiguous_format)
    return agent


def time_updates(agent: DrQSACAgent, batch: Batch, count: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(count):
        wall, cpu = time.perf_counter(), time.process_time()
        agent.update(batch)
        if agent.device.type == "cuda":
            torch.cuda.synchronize(agent.device)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def encoder_flops(agent: DrQSACAgent, batch_size: int) -> float:
    """Forward FLOPs of the critic encoder's convolutions for one batch."""
    flops, size = 0.0, PIXEL_SHAPE[1]
    for conv in (m for m in agent.critic.encoder.modules() if isinstance(m, torch.nn.Conv2d)):
        size = (size + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
        flops += 2 * conv.in_channels * conv.out_channels * conv.kernel_size[0] ** 2 * size * size
    return flops * batch_size


def bench_updates(preset: str, args: argparse.Namespace) -> None:
    batch = random_batch(PIXEL_SHAPE, args.batch_size)
    on = dict(device=args.device)
    fast = make_agent(preset, PIXEL_SHAPE, args.batch_size, cuda_graph=args.cuda_graph, **on)
    baseline = make_agent(preset, PIXEL_SHAPE, args.batch_size, nchw=not args.cuda_graph, **on)
    for agent in (fast, baseline):
        time_updates(agent, batch, 5)  # warm-up: allocator, kernels, the graph's recording
    times: dict[str, tuple[list[float], list[float]]] = {"fast": ([], []), "baseline": ([], [])}
    for _ in range(args.rounds):
        for name, agent in (("fast", fast), ("baseline", baseline)):
            walls, cpus = time_updates(agent, batch, args.updates)
            times[name][0].extend(walls)
            times[name][1].extend(cpus)
    state_agent = make_agent(preset, STATE_SHAPE, args.batch_size, cuda_graph=args.cuda_graph, **on)
    state_batch = random_batch(STATE_SHAPE, args.batch_size)
    time_updates(state_agent, state_batch, 5)
    state_walls, state_cpus = time_updates(state_agent, state_batch, 20)

    def ms(values: list[float]) -> float:
        return round(1e3 * statistics.median(values), 1)

    fast_ms, baseline_ms = ms(times["fast"][0]), ms(times["baseline"][0])
    # A critic forward+backward at s is ~3 forwards; the target critic, the actor's features at s'
    # and at s add 3 more; SAM's perturbed critic pass another 3.
    forwards = 6 + (3 if fast.config.sam.enabled else 0)
    flop = forwards * encoder_flops(fast, args.batch_size)
    emit(what="update", preset=preset, obs="pixels", batch_size=args.batch_size, device=args.device,
         fast="cuda graph" if args.cuda_graph else "channels_last",
         baseline="eager" if args.cuda_graph else "NCHW",
         ms_per_update=fast_ms, cpu_ms_per_update=ms(times["fast"][1]),
         updates_per_s=round(1e3 / fast_ms, 3),
         baseline_ms_per_update=baseline_ms, baseline_cpu_ms_per_update=ms(times["baseline"][1]),
         speedup=round(baseline_ms / fast_ms, 2),
         state_ms_per_update=ms(state_walls), state_cpu_ms_per_update=ms(state_cpus),
         encoder_gflop_per_update=round(flop / 1e9, 1),
         gflops_cpu=round(flop / 1e9 / statistics.median(times["fast"][1]), 1),
         samples=len(times["fast"][0]), load_avg_1min=os.getloadavg()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["cartpole-swingup", "walker-run"])
    parser.add_argument("--presets", nargs="+", default=["drq", "plastic"])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of fast and baseline")
    parser.add_argument("--updates", type=int, default=2, help="updates timed per round and variant")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="where the updates run: cpu, cuda, cuda:N")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="time the graphed update against the eager one (a GPU)")
    parser.add_argument("--skip-env", action="store_true", help="only the updates")
    parser.add_argument("--skip-updates", action="store_true", help="only the environments")
    # bench_dmc_env's settings, for its part
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--pixel-steps", type=int, default=100)
    parser.add_argument("--state-steps", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--env-rounds", type=int, default=5)
    args = parser.parse_args()

    if args.cuda_graph and not args.device.startswith("cuda"):
        parser.error(f"--cuda-graph needs --device cuda (got --device {args.device})")
    torch.set_num_threads(args.threads)
    backend = None if args.skip_env else select_mujoco_gl()
    emit(what="setup", mujoco_gl=backend, cpus=os.cpu_count(), threads=torch.get_num_threads(),
         load_avg_1min=os.getloadavg()[0])
    if not args.skip_env:
        env_args = argparse.Namespace(frames=args.frames, pixel_steps=args.pixel_steps,
                                      state_steps=args.state_steps, image_size=args.image_size,
                                      rounds=args.env_rounds)
        for task in args.tasks:
            bench_task(task, env_args)
    if not args.skip_updates:
        for preset in args.presets:
            bench_updates(preset, args)


if __name__ == "__main__":
    main()
