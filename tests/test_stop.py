"""A run asked to stop (SIGTERM, Ctrl-C) checkpoints at the end of its step, and resumes from there
to the same run as one never stopped; a second signal stops it at once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import pytest
import torch

from plastic.cli import main
from plastic.train.stop import stop_requests
from run_helpers import RESUME_ARGS
from test_train import assert_same_runs

# RESUME_ARGS (900 steps, updates from step 200, Resets every 300 updates) with no checkpoint
# before the end but the stop's own
STOP_ARGS = [arg.replace("checkpoint_interval=300", "checkpoint_interval=100000") for arg in RESUME_ARGS]


def stop_at_step(run_dir, signum: int, after_step: int) -> tuple[int, str]:
    """Run STOP_ARGS, send ``signum`` once its log says ``after_step``; its exit code and stderr."""
    # a test suite run as a background job ignores SIGINT, and its children inherit that
    proc = subprocess.Popen([sys.executable, "-m", "plastic.cli", *STOP_ARGS, "--run-dir", str(run_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith(f"step {after_step}/"):
            proc.send_signal(signum)
            break
    lines += proc.stderr.readlines()
    return proc.wait(timeout=120), "".join(lines)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_run_checkpoints_its_step_and_resumes_to_the_same_run(tmp_path, signum):
    assert "train.checkpoint_interval=100000" in STOP_ARGS
    stopped, straight = tmp_path / "stopped", tmp_path / "straight"
    code, stderr = stop_at_step(stopped, signum, 500)  # after the first Reset (update 300)
    assert code == 130, stderr
    checkpoint = torch.load(stopped / "checkpoint.pt", weights_only=False)
    step = checkpoint["loop"]["step"]
    assert 500 <= step < 900 and f"stopped by {signal.Signals(signum).name} at step {step};" in stderr
    # the updates since the last row of train.csv, which the next row averages with those to come
    assert len(checkpoint["pending_stats"]) == step % 100 and not (stopped / "summary.json").exists()

    assert main([*STOP_ARGS, "--run-dir", str(stopped)]) == 0
    assert main([*STOP_ARGS, "--run-dir", str(straight)]) == 0
    provenance = json.loads((stopped / "summary.json").read_text())["provenance"]
    assert [segment["from_step"] for segment in provenance] == [0, step]  # went on from there
    assert_same_runs(stopped, straight, ("episodes", "train", "eval", "plasticity", "resets"))


@pytest.mark.parametrize(("first", "other"), [(signal.SIGINT, signal.SIGTERM),
                                              (signal.SIGTERM, signal.SIGINT)])
def test_the_same_signal_again_stops_at_once_and_the_handlers_are_put_back(first, other):
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        with stop_requests() as stop:
            signal.raise_signal(first)  # recorded, nothing raised
            assert stop.requested and stop.name == signal.Signals(first).name
            # e.g. the sweep's SIGTERM to a worker that a Ctrl-C already reached: still stopping
            signal.raise_signal(other)
            assert stop.name == signal.Signals(first).name
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(first)
        assert {s: signal.getsignal(s) for s in before} == before
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_ignored_signal_stays_ignored_and_other_threads_take_no_handlers():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job (nohup, &)
    try:
        with stop_requests() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == stop._receive
            signal.raise_signal(signal.SIGINT)
            assert not stop.requested
    finally:
        signal.signal(signal.SIGINT, previous)

    seen = []

    def in_a_thread():
        with stop_requests() as stop:
            seen.append((stop.requested, signal.getsignal(signal.SIGTERM)))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert seen == [(False, signal.getsignal(signal.SIGTERM))]


def test_ctrl_c_on_a_sweep_checkpoints_each_running_run_where_it_stopped(tmp_path):
    """A terminal's Ctrl-C reaches the sweep and its workers; the sweep then sends each worker a
    SIGTERM, which must not cut short the checkpoint the Ctrl-C asked for."""
    import os
    import time

    from plastic.experiments.cli import main as experiments_main

    out = tmp_path / "sweep"
    args = ["sweep", "minatar", "--games", "breakout", "--presets", "drq", "--seeds", "1",
            "--workers", "1", "--steps", "3000", "--out", str(out),
            *(f"--set={k}={v}" for k, v in {
                "train.learning_starts": 100, "agent.batch_size": 4, "agent.replay_capacity": 3000,
                "train.eval_episodes": 1, "train.log_interval": 100, "train.metrics_interval": 0,
                "train.checkpoint_interval": 100000, "train.replay_ratio": 0.5}.items())]
    proc = subprocess.Popen([sys.executable, "-m", "plastic.cli", *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    run_dir = out / "breakout" / "drq" / "seed0"
    deadline = time.time() + 120
    while not (run_dir / "train.csv").exists() or len((run_dir / "train.csv").read_text().split()) < 4:
        assert proc.poll() is None and time.time() < deadline, "the sweep ended before step 300"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it: to the whole process group
    assert proc.wait(timeout=120) != 0
    step = torch.load(run_dir / "checkpoint.pt", weights_only=False)["loop"]["step"]
    assert 300 <= step < 3000 and not (run_dir / "summary.json").exists()

    assert experiments_main(args) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 3000 and [s["from_step"] for s in summary["provenance"]] == [0, step]
