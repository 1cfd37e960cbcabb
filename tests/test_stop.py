"""A run asked to stop (SIGTERM, Ctrl-C) checkpoints at the end of its step, and resumes from there
to the same run as one never stopped; a second signal stops it at once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from plastic.configs import build_config
from plastic.train.loop import RunInterrupted, Trainer, train
from plastic.train.stop import stop_requests
from run_helpers import RESUME_ARGS
from test_train import assert_same_runs

# RESUME_ARGS (900 steps, updates from step 200, Resets every 300 updates) with no checkpoint
# before the end but the stop's own
STOP_ARGS = [arg.replace("checkpoint_interval=300", "checkpoint_interval=100000") for arg in RESUME_ARGS]
STOP_CONFIG = {
    "train.learning_starts": 200, "train.replay_ratio": 1, "agent.batch_size": 8,
    "train.checkpoint_interval": 100000, "train.eval_episodes": 2, "reset.interval": 300,
    "train.log_interval": 100, "train.metrics_interval": 700, "agent.replay_capacity": 2000,
    "train.steps": 900, "train.threads": 1,
}


def tensorboard_steps(run_dir: Path, tag: str = "train/updates") -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


@pytest.mark.parametrize(("signum", "at_step"), [(signal.SIGTERM, 537), (signal.SIGINT, 600)])
def test_a_stopped_run_checkpoints_its_step_and_resumes_to_the_same_run(tmp_path, monkeypatch,
                                                                         signum, at_step):
    """The signal lands inside step AT_STEP (537: between two rows of train.csv, after the first
    Reset; 600: on a row's step); the run ends that step, checkpoints and stops; run again, it
    ends as a run never stopped, logs and TensorBoard events included."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    config = build_config("minatar", "breakout", "plastic", overrides=STOP_CONFIG)
    real_step = Trainer._env_step

    def signalled_step(self):
        real_step(self)
        if self.state.step == at_step:
            signal.raise_signal(signum)

    stopped, straight = tmp_path / "stopped", tmp_path / "straight"
    try:
        monkeypatch.setattr(Trainer, "_env_step", signalled_step)
        with pytest.raises(RunInterrupted) as stop:
            train(config, stopped, progress=False)
        monkeypatch.undo()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stop.value.exit_code == 128 + signum
    assert str(stop.value) == (f"run {stopped} stopped by {signal.Signals(signum).name} at step "
                               f"{at_step}; run the same command again to resume it from its "
                               f"checkpoint at step {at_step}")
    checkpoint = torch.load(stopped / "checkpoint.pt", weights_only=False)
    assert checkpoint["loop"]["step"] == at_step and not (stopped / "summary.json").exists()
    # the updates since train.csv's last row, which its next row averages with those to come
    assert {k: len(v) for k, v in checkpoint["pending_stats"].items()} == (
        {k: at_step % 100 for k in ("loss", "loss_perturbed", "q_mean", "grad_norm", "grad_norm_clean")}
        if at_step % 100 else {})

    train(config, stopped, progress=False)
    train(config, straight, progress=False)
    provenance = json.loads((stopped / "summary.json").read_text())["provenance"]
    assert [segment["from_step"] for segment in provenance] == [0, at_step]  # went on from there
    assert_same_runs(stopped, straight, ("episodes", "train", "eval", "plasticity", "resets"))
    assert tensorboard_steps(stopped) == tensorboard_steps(straight) == list(range(100, 901, 100))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_plastic_train_says_where_a_stopped_run_resumes_and_exits_as_the_signal_says(tmp_path, signum):
    run_dir = tmp_path / "run"
    # a test suite run as a background job ignores SIGINT, and its children inherit that
    proc = subprocess.Popen([sys.executable, "-m", "plastic.cli", *STOP_ARGS, "--run-dir", str(run_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stderr:
        if line.startswith("step 300/"):
            proc.send_signal(signum)
            break
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 128 + signum, stderr  # 143 for SIGTERM, 130 for Ctrl-C
    name = signal.Signals(signum).name
    assert f"plastic: {name}: stopping at the end of this step, with a checkpoint" in stderr
    step = torch.load(run_dir / "checkpoint.pt", weights_only=False)["loop"]["step"]
    assert stderr.rstrip().split("\n")[-1] == (
        f"plastic: run {run_dir} stopped by {name} at step {step}; run the same command again to "
        f"resume it from its checkpoint at step {step}")
    assert 300 <= step < 900 and not (run_dir / "summary.json").exists()


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


def sweep_args(out: Path, steps: int, *backend: str) -> list[str]:
    """A one-run MinAtar sweep with no interval checkpoints: any checkpoint is a stop's."""
    return ["sweep", "minatar", "--games", "breakout", "--presets", "drq", "--seeds", "1", *backend,
            "--workers", "1", "--steps", str(steps), "--out", str(out),
            *(f"--set={k}={v}" for k, v in {
                "train.learning_starts": 100, "agent.batch_size": 4, "agent.replay_capacity": 3000,
                "train.eval_episodes": 1, "train.log_interval": 100, "train.metrics_interval": 0,
                "train.checkpoint_interval": 100000, "train.replay_ratio": 0.5}.items())]


def ctrl_c_at_step_300(args: list[str], run_dir: Path) -> tuple[int, str, int]:
    """Start ``plastic`` with ``args`` in its own process group, send the group a terminal's Ctrl-C
    once ``run_dir``'s train.csv has its row of step 300; (exit code, stderr, checkpoint's step)."""
    import os
    import time

    proc = subprocess.Popen([sys.executable, "-m", "plastic.cli", *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    while not (run_dir / "train.csv").exists() or len((run_dir / "train.csv").read_text().split()) < 4:
        assert proc.poll() is None and time.time() < deadline, "the sweep ended before step 300"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it: to the whole process group
    _, stderr = proc.communicate(timeout=180)
    step = torch.load(run_dir / "checkpoint.pt", weights_only=False)["loop"]["step"]
    return proc.returncode, stderr, step


def test_ctrl_c_on_a_sweep_checkpoints_each_running_run_where_it_stopped(tmp_path):
    """A terminal's Ctrl-C reaches the sweep and its workers; the sweep then sends each worker a
    SIGTERM, which must not cut short the checkpoint the Ctrl-C asked for."""
    from plastic.experiments.cli import main as experiments_main

    args = sweep_args(tmp_path / "sweep", 3000)
    run_dir = tmp_path / "sweep" / "breakout" / "drq" / "seed0"
    code, _, step = ctrl_c_at_step_300(args, run_dir)
    assert code != 0
    assert 300 <= step < 3000 and not (run_dir / "summary.json").exists()

    assert experiments_main(args) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 3000 and [s["from_step"] for s in summary["provenance"]] == [0, step]


def test_ctrl_c_on_a_ray_sweep_checkpoints_its_running_run_where_it_stopped(tmp_path):
    """On Ray the sweep's interrupt cancels its tasks gently: Ray interrupts the task's main thread
    as a Ctrl-C would, and the run checkpoints at the end of its step (before: killed, losing every
    step since its last interval's checkpoint). The terminal's own Ctrl-C does not reach Ray's
    workers (Ray starts them with SIGINT blocked), so Ray's interrupt is the run's first."""
    pytest.importorskip("ray")
    run_dir = tmp_path / "sweep" / "breakout" / "drq" / "seed0"
    code, stderr, step = ctrl_c_at_step_300(sweep_args(tmp_path / "sweep", 20000, "--backend", "ray"),
                                            run_dir)
    assert code != 0 and "running ones checkpoint where they are" in stderr
    assert 300 <= step < 20000 and not (run_dir / "summary.json").exists()


def test_a_sweep_worker_whose_run_stopped_reports_the_stop_and_a_bare_interrupt_reports_nothing(monkeypatch):
    import multiprocessing as mp

    import plastic.experiments.backends as backends

    def stopped_run(job, threads):
        raise RunInterrupted(f"run {job['run_dir']} stopped by SIGTERM at step 7; run the same command "
                             "again to resume it from its checkpoint at step 7", signal_number=15)

    monkeypatch.setattr(backends, "execute", stopped_run)
    receive, send = mp.Pipe(duplex=False)
    backends._child({"id": "breakout/drq/seed0", "run_dir": "/runs/x"}, 1, send)
    result = receive.recv()
    assert result["status"] == "failed" and result["id"] == "breakout/drq/seed0"
    assert result["error"].startswith("run /runs/x stopped by SIGTERM at step 7;")

    def interrupted(job, threads):  # a Ctrl-C outside a run's steps: the sweep reports it
        raise KeyboardInterrupt

    monkeypatch.setattr(backends, "execute", interrupted)
    receive, send = mp.Pipe(duplex=False)
    backends._child({"id": "breakout/drq/seed1", "run_dir": "/runs/y"}, 1, send)
    send.close()
    with pytest.raises(EOFError):  # nothing was sent
        receive.recv()
