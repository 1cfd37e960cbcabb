"""Shared by the training tests: start a run in a subprocess and kill it after a checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# A MinAtar plastic run of 900 steps with Resets, checkpointed every 300 steps (killed after the first).
RESUME_ARGS = [
    "train", "minatar", "--game", "breakout", "--preset", "plastic", "--steps", "900",
    "--no-progress", "--set", "train.learning_starts=200", "--set", "train.replay_ratio=1",
    "--set", "agent.batch_size=8", "--set", "train.checkpoint_interval=300",
    "--set", "train.eval_episodes=2", "--set", "reset.interval=300",
    "--set", "train.log_interval=100", "--set", "train.metrics_interval=700",
    "--set", "agent.replay_capacity=2000", "--set", "train.threads=1",
]


def kill_after_first_checkpoint(cli_args: list[str], run_dir: Path, timeout: float = 300) -> None:
    """Run ``plastic CLI_ARGS --run-dir RUN_DIR`` and SIGKILL it soon after its first checkpoint."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "plastic.cli", *cli_args, "--run-dir", str(run_dir)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + timeout
    while not (run_dir / "checkpoint.pt").exists():
        assert proc.poll() is None, "run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists(), "run finished before it was killed"


def killed_and_straight_runs(cli_args: list[str], tmp_path: Path) -> tuple[Path, Path]:
    """Run ``plastic CLI_ARGS`` twice to the end: once killed after its first checkpoint and
    resumed by the same command, once uninterrupted. Returns (killed, straight) run dirs."""
    from plastic.cli import main

    killed, straight = tmp_path / "killed", tmp_path / "straight"
    kill_after_first_checkpoint(cli_args, killed)
    assert main([*cli_args, "--run-dir", str(killed)]) == 0
    assert main([*cli_args, "--run-dir", str(straight)]) == 0
    # the second process went on from the checkpoint (a run started again from step 0 would end
    # identically on CPU, and the comparison alone would not see it)
    segments = json.loads((killed / "summary.json").read_text())["provenance"]
    assert len(segments) == 2 and segments[0]["from_step"] == 0 < segments[1]["from_step"], segments
    return killed, straight
