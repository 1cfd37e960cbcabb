"""The replay's share of a checkpoint: compressed frames against raw ones, with real Atari frames.

Run: ``python benchmarks/bench_checkpoint.py [--game boxing] [--record 20000] [--capacity 100000]``.
Prints one JSON object per line.

A real game (random actions, the Atari-100k protocol of ``make_atari_env``) is played for
``--record`` steps; its frames are added to a ``ReplayBuffer`` of ``--capacity`` steps, repeated
in order until the buffer is full (zlib's window is 32 KiB, under five frames, so a repeat far
back compresses no better than a new frame would). Then, in alternating rounds, the buffer's state
is saved with ``torch.save`` to a file in ``--dir`` (fsynced, as a checkpoint is) and loaded
back into a second buffer, once with ``state_dict()`` (frames zlib-compressed, the default) and
once with ``state_dict(compress_frames=False)`` (the raw frames, as plastic wrote them before).
A whole Atari checkpoint adds the agent's state to these figures (≈ 120 MB for ``drq``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from harness import run_main
from plastic.envs.atari import make_atari_env
from plastic.replay import ReplayBuffer


def record_frames(game: str, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The newest frame of each observation and the episode ends of ``steps`` random steps."""
    env = make_atari_env(game, seed, train=True)
    rng = np.random.default_rng(seed)
    frames = np.empty((steps, 84, 84), dtype=np.uint8)
    ends = np.zeros(steps, dtype=bool)
    obs, _ = env.reset(seed=seed)
    for t in range(steps):
        frames[t] = obs[-1]
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            ends[t] = True
            obs, _ = env.reset()
    env.close()
    return frames, ends


def atari_buffer(capacity: int) -> ReplayBuffer:
    """An Atari-100k replay: 84x84 frames in 4-frame stacks, 10-step returns, prioritized."""
    return ReplayBuffer(capacity, (84, 84), frame_stack=4, n_step=10, prioritized=True, seed=0)


def filled_buffer(frames: np.ndarray, ends: np.ndarray, capacity: int) -> ReplayBuffer:
    buffer = atari_buffer(capacity)
    for t in range(capacity):
        i = t % len(frames)
        end = bool(ends[i]) or i == len(frames) - 1  # the recording's end closes an episode
        buffer.add(frames[i], t % 18, 0.0, end, end)
    return buffer


def save_and_load(buffer: ReplayBuffer, path: Path, compress: bool) -> dict[str, float]:
    start = time.perf_counter()
    state = buffer.state_dict(compress_frames=compress)
    with open(path, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    saved = time.perf_counter()
    restored = atari_buffer(buffer.capacity)
    restored.load_state_dict(torch.load(path, weights_only=False))
    loaded = time.perf_counter()
    if not np.array_equal(restored._frames, buffer._frames):
        raise RuntimeError("the loaded frames differ from the saved ones")
    return {"save_s": saved - start, "load_s": loaded - saved, "mb": path.stat().st_size / 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--game", default="boxing")
    parser.add_argument("--record", type=int, default=20_000, help="real steps played")
    parser.add_argument("--capacity", type=int, default=100_000, help="Atari-100k's replay size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the files go (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.record < 1 or args.capacity < 1 or args.rounds < 1:
        parser.error("--record, --capacity and --rounds must be positive")
    torch.set_num_threads(1)

    start = time.perf_counter()
    frames, ends = record_frames(args.game, min(args.record, args.capacity), seed=0)
    buffer = filled_buffer(frames, ends, args.capacity)
    print(json.dumps({"bench": "checkpoint", "game": args.game, "recorded": len(frames),
                      "capacity": args.capacity, "frame_mb": buffer._frames.nbytes / 1e6,
                      "setup_s": round(time.perf_counter() - start, 1)}), flush=True)

    figures: dict[str, list[dict[str, float]]] = {"compressed": [], "raw": []}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for r in range(args.rounds):
            for name in ("compressed", "raw") if r % 2 == 0 else ("raw", "compressed"):
                path = Path(tmp) / f"{name}.pt"
                figures[name].append(save_and_load(buffer, path, name == "compressed"))
                path.unlink()
    medians = {name: {key: statistics.median(f[key] for f in runs) for key in runs[0]}
               for name, runs in figures.items()}
    for name, median in medians.items():
        print(json.dumps({"bench": "checkpoint", "frames": name,
                          **{k: round(v, 2) for k, v in median.items()}}), flush=True)
    raw, packed = medians["raw"], medians["compressed"]
    print(json.dumps({"bench": "checkpoint", "size_ratio": round(raw["mb"] / packed["mb"], 1),
                      "save_time_ratio": round(packed["save_s"] / raw["save_s"], 2),
                      "load_time_ratio": round(packed["load_s"] / raw["load_s"], 2)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
