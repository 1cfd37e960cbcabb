"""DeepMind Control env speed on this machine, against raw dm_control doing the same work.

Run: ``python benchmarks/bench_dmc_env.py [--tasks cartpole-swingup walker-run]``. Prints one JSON
object per line:

- ``render``: frames/s of ``physics.render`` at 64x64 on raw dm_control (no wrapper).
- ``pixels``: agent and env steps/s of ``make_dmc_env(obs="pixels")`` (action repeat, one
  render per agent step, 3-frame stack), and ``overhead`` = our time / the time raw dm_control
  takes for the same steps and ``physics.render`` calls (1.0 = no overhead; the two loops run
  in alternating chunks so that varying load hits both alike).
- ``pixels_shadow512``: the same with ``shadow_size=512`` (a 512 instead of 2048 shadow map),
  against the same raw loop at the model's default shadow map.
- ``state``: the same for ``obs="state"`` against raw stepping plus flattening the observation.

The first line records the GL backend and the load average: other processes on a 2-core machine
slow everything down, so compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from plastic.envs.dmc import import_dm_control_suite, make_dmc_env, select_mujoco_gl


def emit(**record: object) -> None:
    print(json.dumps({"bench": "dmc_env", **record}), flush=True)


class RawLoop:
    """Raw dm_control doing what the wrapper does: repeated steps, then render or flatten."""

    def __init__(self, dm_env, repeat: int, size: int | None, camera: int) -> None:
        self.env, self.repeat, self.size, self.camera = dm_env, repeat, size, camera
        self.rng = np.random.default_rng(0)
        self.spec = dm_env.action_spec()
        dm_env.reset()

    def run(self, agent_steps: int) -> float:
        start = time.perf_counter()
        for _ in range(agent_steps):
            action = self.rng.uniform(self.spec.minimum, self.spec.maximum)
            for _ in range(self.repeat):
                time_step = self.env.step(action)
                if time_step.last():
                    self.env.reset()
            if self.size is None:
                np.concatenate([np.ravel(v) for v in time_step.observation.values()])
            else:
                self.env.physics.render(height=self.size, width=self.size, camera_id=self.camera)
        return time.perf_counter() - start


class WrapperLoop:
    def __init__(self, env) -> None:
        self.env = env
        env.reset()
        env.action_space.seed(0)

    def run(self, agent_steps: int) -> float:
        start = time.perf_counter()
        for _ in range(agent_steps):
            *_, info = self.env.step(self.env.action_space.sample())
            if info["game_over"]:
                self.env.reset()
        return time.perf_counter() - start


def interleaved(ours: WrapperLoop, raw: RawLoop, steps: int, rounds: int) -> tuple[float, float]:
    """Total seconds of each loop over ``rounds`` alternating chunks (fair under varying load)."""
    chunk = max(1, steps // rounds)
    ours_s = raw_s = 0.0
    for _ in range(rounds):
        ours_s += ours.run(chunk)
        raw_s += raw.run(chunk)
    return ours_s, raw_s


def bench_task(task: str, args: argparse.Namespace) -> None:
    suite = import_dm_control_suite()
    domain, name = task.split("-", 1)
    camera = 2 if domain == "quadruped" else 0
    size = args.image_size
    raw = suite.load(domain, name, task_kwargs={"random": 0})
    raw.reset()
    raw.physics.render(height=size, width=size, camera_id=camera)  # context creation
    start = time.perf_counter()
    for _ in range(args.frames):
        raw.physics.render(height=size, width=size, camera_id=camera)
    fps = args.frames / (time.perf_counter() - start)
    emit(task=task, what="render", image_size=size, frames_per_s=fps)

    variants = (
        ("pixels", "pixels", {}, args.pixel_steps),
        ("pixels_shadow512", "pixels", {"shadow_size": 512}, args.pixel_steps),
        ("state", "state", {}, args.state_steps),
    )
    for what, obs, kwargs, steps in variants:
        env = make_dmc_env(task, seed=0, obs=obs, image_size=size, action_repeat=args.action_repeat or None,
                           **kwargs)
        repeat = env.action_repeat
        baseline = RawLoop(raw, repeat, size if obs == "pixels" else None, camera)
        ours_s, raw_s = interleaved(WrapperLoop(env), baseline, steps, args.rounds)
        env.close()
        done = max(1, steps // args.rounds) * args.rounds
        emit(
            task=task,
            what=what,
            action_repeat=repeat,
            agent_steps_per_s=done / ours_s,
            env_steps_per_s=done * repeat / ours_s,
            raw_env_steps_per_s=done * repeat / raw_s,
            overhead=ours_s / raw_s,
        )
    raw.physics.free()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["cartpole-swingup", "walker-run"])
    parser.add_argument("--action-repeat", type=int, default=2,
                        help="env steps per agent step (default 2, as recorded; 0: each task's own)")
    parser.add_argument("--frames", type=int, default=100, help="renders timed for 'render'")
    parser.add_argument("--pixel-steps", type=int, default=100, help="agent steps from pixels")
    parser.add_argument("--state-steps", type=int, default=1000, help="agent steps from state")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="alternations of ours and raw")
    args = parser.parse_args()

    backend = select_mujoco_gl()
    emit(what="setup", mujoco_gl=backend, cpus=os.cpu_count(), load_avg_1min=os.getloadavg()[0])
    for task in args.tasks:
        bench_task(task, args)


if __name__ == "__main__":
    main()
