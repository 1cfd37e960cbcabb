"""Replay buffer memory and speed at Atari-100k size, against naive baselines.

Run: ``python benchmarks/bench_replay.py [--capacity 100000]``. Prints one JSON object per line.

- ``compact``: ``plastic.replay.ReplayBuffer`` (each 84x84 frame stored once, stacks rebuilt at
  sampling), uniform and prioritized, 4-frame stacks, 10-step returns.
- ``naive-stacks``: every transition stores its full obs and next_obs stacks (what a simple
  buffer does); its bytes per transition are computed, and its (vectorised) sampling is timed on
  a smaller capacity, since 100k of them would take 5.6 GB.
- ``naive-loop``: a sampler over the same compact storage that builds each sample with Python
  loops (frame by frame, step by step), as a straightforward implementation would.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from plastic.replay import ReplayBuffer

FRAME = (84, 84)
STACK = 4
N_STEP = 10
GAMMA = 0.99


def emit(**record: object) -> None:
    print(json.dumps({"bench": "replay", **record}), flush=True)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def fill(buffer: ReplayBuffer, steps: int, seed: int = 0) -> float:
    """Add Atari-like episodes (life losses, terminals, a few truncations); seconds per add."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, size=(257, *FRAME), dtype=np.uint8)
    remaining = 0
    start = time.perf_counter()
    for t in range(steps):
        if remaining == 0:
            remaining = int(rng.integers(200, 3000))
            truncated = rng.random() < 0.1
        remaining -= 1
        end = remaining == 0
        life_loss = not end and t % 250 == 249
        terminal = life_loss or (end and not truncated)
        buffer.add(pool[t % 257], t % 18, float(t % 7 == 0), terminal, end)
    return (time.perf_counter() - start) / steps


def naive_loop_sample(buffer: ReplayBuffer, batch_size: int, rng: np.random.Generator) -> tuple:
    """Per-sample Python loops over the compact storage (same semantics, no vectorisation)."""
    b = buffer
    cap, newest = b.capacity, b.num_added - 1
    obs, next_obs, rewards, discounts, actions = [], [], [], [], []

    def stack(step: int) -> np.ndarray:
        slot = step % cap
        frames = []
        for back in range(STACK - 1, -1, -1):
            if back > b._episode_step[slot]:
                frames.append(np.zeros(FRAME, np.uint8))
            else:
                frames.append(b._frames[(step - back) % cap])
        return np.stack(frames)

    while len(obs) < batch_size:
        slot = int(rng.integers(0, len(b)))
        if not b._valid[slot]:
            continue
        step = newest - (newest - slot) % cap
        reward, discount, next_step = 0.0, GAMMA**N_STEP, step + N_STEP
        for k in range(N_STEP):
            s = (step + k) % cap
            reward += GAMMA**k * float(b._rewards[s])
            if b._terminal[s]:
                discount, next_step = 0.0, step + k
                break
        obs.append(stack(step))
        next_obs.append(stack(next_step))
        rewards.append(reward)
        discounts.append(discount)
        actions.append(b._actions[slot])
    return (
        np.stack(obs),
        np.array(actions),
        np.array(rewards, np.float32),
        np.array(discounts, np.float32),
        np.stack(next_obs),
    )


def bench_compact(capacity: int, prioritized: bool, repeats: int) -> None:
    name = "compact-prioritized" if prioritized else "compact-uniform"
    buffer = ReplayBuffer(
        capacity,
        FRAME,
        frame_stack=STACK,
        n_step=N_STEP,
        gamma=GAMMA,
        prioritized=prioritized,
        seed=0,
    )
    add_seconds = fill(buffer, capacity + capacity // 10)  # wrap around once
    emit(buffer=name, metric="bytes_per_transition", value=round(buffer.nbytes / capacity, 1))
    emit(buffer=name, metric="total_bytes", capacity=capacity, value=buffer.nbytes)
    emit(buffer=name, metric="add_us", value=round(add_seconds * 1e6, 2))
    emit(buffer=name, metric="sampleable_fraction", value=round(buffer.num_valid / capacity, 4))
    rng = np.random.default_rng(1)
    for batch_size in (32, 512):
        times = repeats if batch_size == 32 else max(5, repeats // 3)
        seconds = median_seconds(lambda b=batch_size: buffer.sample(b), times)
        emit(buffer=name, metric="sample_ms", batch_size=batch_size, value=round(seconds * 1e3, 3))
        index = buffer.sample(batch_size).index
        priority = rng.random(batch_size)
        seconds = median_seconds(lambda i=index, p=priority: buffer.update_priorities(i, p), 50)
        emit(
            buffer=name,
            metric="update_priorities_ms",
            batch_size=batch_size,
            value=round(seconds * 1e3, 3),
        )
    if not prioritized:
        for batch_size in (32, 512):
            times = repeats if batch_size == 32 else max(3, repeats // 10)
            seconds = median_seconds(lambda b=batch_size: naive_loop_sample(buffer, b, rng), times)
            emit(
                buffer="naive-loop",
                metric="sample_ms",
                batch_size=batch_size,
                value=round(seconds * 1e3, 3),
            )


def bench_naive_stacks(capacity: int, small: int, repeats: int) -> None:
    naive_bytes = 2 * STACK * int(np.prod(FRAME)) + 8 + 4 + 4 + 1  # 2 stacks, action, r, disc, done
    emit(buffer="naive-stacks", metric="bytes_per_transition", value=naive_bytes)
    emit(buffer="naive-stacks", metric="total_bytes", capacity=capacity, value=naive_bytes * capacity)
    rng = np.random.default_rng(2)
    obs = rng.integers(0, 256, size=(small, STACK, *FRAME), dtype=np.uint8)
    next_obs = rng.integers(0, 256, size=(small, STACK, *FRAME), dtype=np.uint8)
    rewards, discounts = rng.random(small, np.float32), rng.random(small, np.float32)
    actions = rng.integers(0, 18, size=small)

    def sample(batch_size: int) -> tuple:
        i = rng.integers(0, small, size=batch_size)
        return obs[i], actions[i], rewards[i], discounts[i], next_obs[i]

    for batch_size in (32, 512):
        seconds = median_seconds(lambda b=batch_size: sample(b), repeats)
        emit(
            buffer="naive-stacks",
            metric="sample_ms",
            batch_size=batch_size,
            capacity=small,
            value=round(seconds * 1e3, 3),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=100_000)
    parser.add_argument("--naive-capacity", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    for prioritized in (False, True):
        bench_compact(args.capacity, prioritized, args.repeats)
    bench_naive_stacks(args.capacity, args.naive_capacity, args.repeats)


if __name__ == "__main__":
    main()
