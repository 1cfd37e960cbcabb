"""What a user of ``plastic train`` meets: flags that name a run, one process per run directory,
Ctrl-C, unreadable checkpoints, full disks and read-only directories, impossible encoders, file
permissions, runs that learn nothing, evaluation in the speed logs, CReLU's active units, a quick
``--help``, close matches for typos, ``--print-config`` and extending a finished run.

Every error is one line on stderr, and nothing already checkpointed is lost.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from plastic.cli import main
from plastic.configs import build_config
from plastic.train import checkpoint as checkpoint_module
from plastic.train import loop as loop_module
from plastic.train.logger import RunLogger, read_csv
from plastic.train.loop import Trainer

TINY = [
    "--no-progress", "--set", "train.learning_starts=100", "--set", "train.replay_ratio=0.25",
    "--set", "agent.batch_size=8", "--set", "agent.replay_capacity=1000",
    "--set", "train.eval_episodes=1", "--set", "train.eval_envs=1",
    "--set", "env.max_episode_steps=100", "--set", "train.log_interval=50",
    "--set", "train.metrics_interval=0", "--set", "train.checkpoint_interval=100",
    "--set", "train.threads=1",
]


KEEP = ("--set", "train.keep_final_checkpoint=true")  # a finished run keeps its checkpoint


def train_args(run_dir: Path, steps: int = 300, *extra: str) -> list[str]:
    return ["train", "minatar", "--game", "breakout", "--preset", "drq", "--steps", str(steps),
            "--run-dir", str(run_dir), *TINY, *extra]


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a failed command leaves on stderr (after any progress lines)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.rstrip("\n").split("\n")[-1]
    assert last.startswith("plastic: "), err
    return last


def stop_at_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Ctrl-C (a KeyboardInterrupt, as Python turns SIGINT into) when the run reaches ``step``."""
    real_step = Trainer._env_step

    def interrupted(self: Trainer) -> None:
        if self.state.step == step:
            raise KeyboardInterrupt
        real_step(self)

    monkeypatch.setattr(Trainer, "_env_step", interrupted)


def spawn(args: list[str]) -> subprocess.Popen[str]:
    """``plastic ARGS`` in a child process that takes Ctrl-C as a terminal's foreground job would,
    even where the tests run as a background job (whose children inherit SIGINT ignored)."""
    return subprocess.Popen([sys.executable, "-m", "plastic.cli", *args], text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def poll_until(condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float,
               failure: str) -> None:
    """Until ``condition()`` holds, failing if ``proc`` ends or ``timeout`` seconds pass first."""
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, failure
        time.sleep(0.05)


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    poll_until(path.exists, proc, timeout, f"{path} did not appear")


def wait_until_stopped(proc: subprocess.Popen[str], timeout: float = 30) -> None:
    """Until the kernel reports ``proc`` stopped (state T in /proc/PID/stat)."""
    stat_file = Path(f"/proc/{proc.pid}/stat")
    poll_until(lambda: stat_file.read_text().rpartition(")")[2].split()[0] == "T", proc, timeout,
               f"process {proc.pid} did not stop")


# 1 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("assignment", "advice"), [
    ("game=asterix", "use --game asterix instead"),
    ("seed=7", "use --seed 7 instead"),
    ("preset=drq", "use --preset drq instead"),
    ("suite=atari", "use plastic train atari ... instead"),
])
def test_set_refuses_the_keys_that_name_the_run(tmp_path, capsys, assignment, advice):
    run_dir = tmp_path / "run"
    assert main(train_args(run_dir, 300, "--set", assignment)) == 2
    line = error_line(capsys)
    assert line == (f"plastic: error: --set {assignment}: {assignment.split('=')[0]} names the run "
                    f"and its directory; {advice}")
    assert not run_dir.exists()


# 2 ------------------------------------------------------------------------------------------
def test_a_second_process_on_a_run_directory_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    # Random actions only (no updates): a long, cheap run that holds the directory.
    args = train_args(run_dir, 1_000_000, "--set", "train.learning_starts=1000000")
    first = spawn(args)
    try:
        wait_for(run_dir / "episodes.csv", first)
        first.send_signal(signal.SIGSTOP)  # paused, it keeps its lock and writes nothing more
        wait_until_stopped(first)  # the signal lands asynchronously: a checkpoint write may go on
        before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err == (f"plastic: error: another process (pid {first.pid}) is running the run in "
                       f"{run_dir}; wait for it to finish or stop it, then run the same command "
                       "again\n")
        after = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
        assert after == before  # the second process wrote nothing there
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()


# 3 ------------------------------------------------------------------------------------------
def test_ctrl_c_says_where_the_run_resumes_and_the_same_command_finishes_it(tmp_path, capsys):
    run_dir = tmp_path / "run"
    # Long enough after its first checkpoint (atomic: complete once it exists) that a test process
    # slowed by a loaded machine still interrupts the run before it finishes.
    args = train_args(run_dir, 3000, "--set", "train.checkpoint_interval=300")
    proc = spawn(args)
    wait_for(run_dir / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = err.rstrip("\n").split("\n")[-1]
    # the run finished the step it was on and checkpointed it (tests/test_stop.py: resumed exactly)
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=False)["loop"]["step"]
    assert 300 <= checkpoint < 3000
    assert last == (f"plastic: run {run_dir} stopped by SIGINT at step {checkpoint}; run the same "
                    f"command again to resume it from its checkpoint at step {checkpoint}")
    assert not (run_dir / "summary.json").exists()

    assert main(args) == 0
    assert f"resuming {run_dir} at step {checkpoint}" in capsys.readouterr().err
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 3000


def test_ctrl_c_before_the_first_checkpoint_says_the_run_starts_over(tmp_path, capsys, monkeypatch):
    stop_at_step(monkeypatch, 50)
    assert main(train_args(tmp_path / "run")) == 130
    assert error_line(capsys) == (f"plastic: run {tmp_path / 'run'} stopped at step 50; run the same "
                                  "command again to start it over (it has no checkpoint yet)")


# 4 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_an_unreadable_checkpoint_is_named_and_nothing_is_deleted(tmp_path, capsys, monkeypatch, damage):
    run_dir = tmp_path / "run"
    stop_at_step(monkeypatch, 250)
    assert main(train_args(run_dir)) == 130
    monkeypatch.undo()
    path = run_dir / "checkpoint.pt"
    good = path.read_bytes()
    path.write_bytes({"truncated": good[: len(good) // 2], "garbage": b"not a checkpoint" * 50,
                      "empty": b""}[damage])
    logs = {p.name: p.read_bytes() for p in run_dir.glob("*.csv")}
    capsys.readouterr()

    assert main(train_args(run_dir)) == 2
    line = error_line(capsys)
    assert line.startswith(f"plastic: error: checkpoint {path} cannot be read (")
    assert line.endswith("no earlier checkpoint is kept: move it away or delete it to start the run "
                         "over from step 0 (the same command then rewrites the run's logs), or put "
                         "back a good copy to resume")
    assert path.exists() and {p.name: p.read_bytes() for p in run_dir.glob("*.csv")} == logs

    path.write_bytes(good)  # a good copy back: the run resumes and finishes
    assert main(train_args(run_dir)) == 0


# 5 ------------------------------------------------------------------------------------------
class FullDisk:
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, handle, room: int = 4096) -> None:
        self.handle, self.room = handle, room

    def write(self, data: bytes) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


@pytest.mark.parametrize("how", ["file", "torch"])
def test_a_full_disk_names_the_file_and_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch, how):
    run_dir = tmp_path / "run"
    real_save = torch.save
    saves = []

    def save(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) == 1:  # the checkpoint at step 100
            return real_save(obj, f, *args, **kwargs)
        if how == "file":  # the disk fills under torch.save: torch raises "enforce fail at ..."
            return real_save(obj, FullDisk(f), *args, **kwargs)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", save)
    assert main(train_args(run_dir)) == 2
    line = error_line(capsys)
    reason = "No space left on device" if how == "file" else \
        "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598; "
    assert line.startswith(f"plastic: error: cannot write {run_dir / 'checkpoint.pt'}: {reason}")
    assert line.endswith("; once that is fixed, run the same command again to resume it from its "
                         "checkpoint at step 100")
    monkeypatch.undo()
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["loop"]["step"] == 100
    assert not list(run_dir.glob(".*.tmp"))
    assert main(train_args(run_dir)) == 0


def test_a_read_only_run_directory_names_the_file_and_loses_nothing(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    stop_at_step(monkeypatch, 250)
    assert main(train_args(run_dir)) == 130
    monkeypatch.undo()
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    capsys.readouterr()

    # Root writes through a chmod, so there the atomic writer's mkstemp is made to fail as a
    # read-only directory makes it fail; elsewhere the directory is really made read-only.
    if os.geteuid() == 0:
        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(run_dir))

        monkeypatch.setattr(checkpoint_module.tempfile, "mkstemp", refuse)
        denied = run_dir / "config.json"
    else:
        run_dir.chmod(0o555)
        denied = run_dir / ".lock"
    try:
        assert main(train_args(run_dir)) == 2
    finally:
        run_dir.chmod(0o755)
        monkeypatch.undo()
    line = error_line(capsys)
    assert line.startswith(f"plastic: error: cannot write {denied}: Permission denied; once that is "
                           "fixed, run the same command again to resume it from its checkpoint")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != ".lock"} \
        == {k: v for k, v in before.items() if k != ".lock"}
    assert main(train_args(run_dir)) == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod; the simulated variant runs")
def test_a_really_read_only_directory(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_dir.chmod(0o555)
    try:
        assert main(train_args(run_dir)) == 2
    finally:
        run_dir.chmod(0o755)
    assert "Permission denied" in error_line(capsys)


# 6 ------------------------------------------------------------------------------------------
def test_an_encoder_too_big_for_the_frames_is_refused_naming_the_key(tmp_path, capsys):
    assert main(train_args(tmp_path / "run", 300, "--set", "network.encoder=nature")) == 2
    assert error_line(capsys) == (
        "plastic: error: network.encoder = 'nature' needs frames of at least 36x36 pixels (its "
        "convolutions shrink smaller ones to nothing); minatar frames are 10x10: use "
        "network.encoder=minatar, the minatar default")
    assert not (tmp_path / "run").exists()


# 7 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_result_files_are_readable_by_others_as_the_umask_allows(tmp_path, umask):
    previous = os.umask(umask)
    try:
        assert main(train_args(tmp_path / "run", 200, "--set", "train.metrics_interval=100", *KEEP)) == 0
    finally:
        os.umask(previous)
    names = ["config.json", "summary.json", "final_model.pt", "checkpoint.pt", "episodes.csv",
             "train.csv", "eval.csv", "plasticity.csv"]
    modes = {name: stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) for name in names}
    assert modes == dict.fromkeys(names, 0o666 & ~umask)


# 8 ------------------------------------------------------------------------------------------
def test_a_run_that_cannot_learn_says_so_and_collects_data(tmp_path, capsys):
    assert main(train_args(tmp_path / "run", 80)) == 0
    err = capsys.readouterr().err
    assert ("plastic: warning: train.steps (80) <= train.learning_starts (100): the agent acts at "
            "random and never updates, so this run only collects data; raise --steps or lower "
            "train.learning_starts to train\n") in err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["updates"] == 0


# 9 ------------------------------------------------------------------------------------------
def test_evaluation_time_is_not_counted_in_steps_per_second(tmp_path, capsys, monkeypatch):
    real_evaluate = loop_module.play_games

    def slow_evaluate(*args, **kwargs):
        time.sleep(3.0)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(loop_module, "play_games", slow_evaluate)
    # Random steps only: a window of 50 steps takes milliseconds; with a 3 s evaluation in it,
    # it would log at most 50 / 3 steps/s.
    assert main(train_args(tmp_path / "run", 300, "--set", "train.eval_interval=100",
                           "--set", "train.learning_starts=1000")) == 0
    rows = read_csv(tmp_path / "run" / "train.csv")
    assert [r["step"] for r in rows] == [50, 100, 150, 200, 250, 300]
    assert min(r["steps_per_s"] for r in rows) > 50 / 1.5
    err = capsys.readouterr().err
    for step in (100, 200, 300):
        assert f"evaluating at step {step}: 1 episodes\n" in err
        assert f"evaluation at step {step}: score " in err


# 10 -----------------------------------------------------------------------------------------
def test_head_active_units_of_a_crelu_head_are_not_half_by_construction(tmp_path):
    config = build_config("minatar", "breakout", "drq+crelu", overrides={
        "train.learning_starts": 1000, "agent.replay_capacity": 1000})
    trainer = Trainer(config, tmp_path)
    trainer._setup()
    trainer.logger = RunLogger(tmp_path, tensorboard=False)
    trainer.obs, _ = trainer.env.reset()
    for _ in range(300):
        trainer._env_step()

    def head_active() -> float:
        trainer._log_plasticity()
        return read_csv(tmp_path / "plasticity.csv")[-1]["head_active"]

    unbiased = head_active()
    with torch.no_grad():  # every hidden unit of the head pushed positive
        for stream in trainer.agent.online.head._streams():
            stream[0].bias_mu.add_(100.0)
    assert head_active() > 0.99
    assert 0.0 < unbiased < 1.0


# 11 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"]])
def test_help_does_not_import_torch(argv):
    code = (f"import sys\nfrom plastic.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n"
            "    pass\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.rstrip().split("\n")[-1] == "[]"
    assert "usage: plastic" in result.stdout


def test_the_building_blocks_still_import_from_plastic():
    import plastic
    from plastic import SAM, CReLU, LayerNorm2d, NoisyLinear, metrics, reset_
    from plastic import metrics as metrics_module
    from plastic import reset as reset_module
    from plastic.nn import layers
    from plastic.optim import sam

    # the names the README's quickstart imports are the building blocks themselves
    assert (SAM, reset_, metrics) == (sam.SAM, reset_module.reset_, metrics_module)
    assert (CReLU, LayerNorm2d, NoisyLinear) == (layers.CReLU, layers.LayerNorm2d, layers.NoisyLinear)
    assert {"SAM", "CReLU", "metrics"} <= set(dir(plastic))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        plastic.nope  # noqa: B018


# 12 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("flags", "start"), [
    (["--set", "sam.rhoo=1"], "unknown config key 'sam.rhoo' (did you mean sam.rho?); valid keys in sam: "),
    (["--set", "rho=1"], "unknown config key 'rho' (did you mean sam.rho?); valid keys: device, "),
    (["--preset", "plastik"], "unknown preset 'plastik' (did you mean plastic?); "),
    (["--preset", "drq+sma"], "unknown component 'sma' (did you mean sam?) in preset 'drq+sma'"),
])
def test_typos_get_the_closest_names_first_and_a_short_list(tmp_path, capsys, flags, start):
    assert main([*train_args(tmp_path / "run"), *flags]) == 2
    line = error_line(capsys)
    assert line.startswith(f"plastic: error: {start}")
    assert len(line) < 400 and "train.steps" not in line


# 13 -----------------------------------------------------------------------------------------
def test_print_config_prints_the_resolved_config_and_runs_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main([*train_args(run_dir), "--set", "sam.rho=0.05", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["suite"], config["game"], config["preset"]) == ("minatar", "breakout", "drq")
    assert config["sam"]["rho"] == 0.05 and config["train"]["steps"] == 300
    assert config["network"]["encoder"] == "minatar"
    assert not run_dir.exists()


@pytest.mark.parametrize(("suite", "game", "start", "listed"), [
    ("minatar", "pong", "unknown minatar game 'pong'", "space_invaders"),
    ("atari", "pongg", "Unknown Atari game 'pongg'", "up_n_down"),
    ("dmc", "cheetah-rnu", "unknown DeepMind Control task 'cheetah-rnu'", "ball_in_cup-catch"),
])
def test_print_config_refuses_an_unknown_game_as_a_run_would(tmp_path, capsys, suite, game, start, listed):
    if suite == "dmc":
        pytest.importorskip("dm_control")
    name_flag = "--task" if suite == "dmc" else "--game"
    assert main(["train", suite, name_flag, game, "--print-config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"plastic: error: {start}")
    assert listed in captured.err and "Traceback" not in captured.err


def test_a_missing_optional_library_is_one_line_naming_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)  # as if ale-py were not installed
    run_dir = tmp_path / "run"
    assert main(["train", "atari", "--game", "pong", "--steps", "10", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("plastic: error: Atari environments need ale-py: pip install 'ale-py")
    assert err.count("\n") == 1 and not run_dir.exists()


def test_dmc_tasks_with_settings_here_need_no_dm_control_to_build_a_config(monkeypatch):
    import plastic.envs.dmc_tasks as dmc_tasks
    from plastic.errors import MissingDependencyError

    def no_dm_control():
        raise MissingDependencyError("mujoco is not installed. pip install -e '.[dmc]'")

    monkeypatch.setattr(dmc_tasks, "all_dmc_task_names", no_dm_control)
    for task in ("walker-run", "walker-walk", "cartpole-swingup"):  # DMC-Medium and OTHER_TASKS
        assert build_config("dmc", task, "drq").game == task
    with pytest.raises(ValueError, match="unknown DeepMind Control task 'cheetah-rnu'.*walker-walk.*cannot "
                                         "be checked here.*pip install"):
        build_config("dmc", "cheetah-rnu", "drq")


def test_games_outside_the_benchmark_lists_are_checked_and_stored_by_their_suite():
    assert build_config("atari", "SpaceInvaders", "drq").game == "space_invaders"  # any ale-py ROM
    assert build_config("atari", "MsPacman", "drq").game == "ms_pacman"
    with pytest.raises(ValueError, match="Unknown Atari game 'Pongg'"):
        build_config("atari", "Pongg", "drq")
    with pytest.raises(ValueError, match="unknown minatar game 'pong'"):
        build_config("minatar", "pong", "drq")


def test_train_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:\n  plastic train minatar --game breakout" in out and "--print-config" in out


def test_a_finished_run_extends_to_more_steps_and_never_fewer(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(train_args(run_dir, 200, *KEEP)) == 0
    assert (run_dir / "checkpoint.pt").exists()  # the final checkpoint is kept
    first = json.loads((run_dir / "summary.json").read_text())

    assert main(train_args(run_dir, 320, *KEEP)) == 0
    assert f"extending {run_dir} from step 200 to 320" in capsys.readouterr().err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 320 and summary["updates"] > first["updates"]
    assert json.loads((run_dir / "summary_step200.json").read_text()) == first
    assert (run_dir / "final_model_step200.pt").exists()
    assert [r["step"] for r in read_csv(run_dir / "eval.csv")] == [200, 320]
    assert [r["step"] for r in read_csv(run_dir / "train.csv")] == [50, 100, 150, 200, 250, 300, 320]
    assert json.loads((run_dir / "config.json").read_text())["train"]["steps"] == 320

    assert main(train_args(run_dir, 320, *KEEP)) == 0  # finished: only reports
    captured = capsys.readouterr()
    assert "run already finished" in captured.err and "'score': " in captured.err
    for printed in (captured.err, captured.out):  # the summary, less its per-game lists
        assert "'returns'" not in printed and '"returns"' not in printed and "lengths" not in printed
    assert json.loads(captured.out)["score"] == summary["score"]
    assert main(train_args(run_dir, 250, *KEEP)) == 2
    line = error_line(capsys)
    assert "train.steps: run has 320, asked 250" in line and "train.steps may only grow" in line


def test_a_finished_run_without_its_final_checkpoint_cannot_be_extended(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(train_args(run_dir, 120)) == 0  # train.keep_final_checkpoint is off by default
    assert not (run_dir / "checkpoint.pt").exists()
    assert main(train_args(run_dir, 200)) == 2
    assert error_line(capsys) == (
        f"plastic: error: run directory {run_dir} finished at step 120 without keeping its final "
        "checkpoint.pt (a run keeps it with train.keep_final_checkpoint=true and "
        "train.checkpoint_interval > 0), so it cannot be extended to 200 steps; use another "
        "--run-dir to train a longer run from the start")
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 120


@pytest.mark.parametrize("stopped_at", ["eval.csv", "final_model.pt"])
def test_a_run_stopped_after_its_final_evaluation_does_not_evaluate_again(
        tmp_path, capsys, monkeypatch, stopped_at):
    run_dir = tmp_path / "run"
    real_log, real_save = RunLogger.log, loop_module.save_checkpoint

    def log(self, stream, step, values):
        if stopped_at == "eval.csv" and stream == "eval":
            raise KeyboardInterrupt
        real_log(self, stream, step, values)

    def save(path, state):
        if path.name == stopped_at:
            raise KeyboardInterrupt
        real_save(path, state)

    monkeypatch.setattr(RunLogger, "log", log)
    monkeypatch.setattr(loop_module, "save_checkpoint", save)
    assert main(train_args(run_dir, 200)) == 130
    assert error_line(capsys).endswith("resume it from its checkpoint at step 200")
    monkeypatch.undo()

    assert main(train_args(run_dir, 200)) == 0
    assert "evaluating at step" not in capsys.readouterr().err  # the kept result is used
    rows = read_csv(run_dir / "eval.csv")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [r["step"] for r in rows] == [200] and rows[0]["score"] == pytest.approx(summary["score"])


def test_the_kept_final_checkpoint_follows_the_final_evaluation(tmp_path):
    """The kept final checkpoint holds what an extension needs (the env's last observation)."""
    assert main(train_args(tmp_path / "run", 120, *KEEP)) == 0
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["loop"]["step"] == 120 and isinstance(state["obs"], np.ndarray)
    assert state["loop"]["evaluations"] == 1  # saved after the final evaluation
