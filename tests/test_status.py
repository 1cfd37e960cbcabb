"""`plastic status DIR`: each run of a sweep's plan read from its files, as finished, running (a
process holds its lock), interrupted, failed or not started, with a running run's time left."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from pathlib import Path

import pytest

from plastic.experiments.benchmarks import last_log_row, last_log_rows
from plastic.experiments.cli import main, planned_by_command
from plastic.experiments.status import RunState, format_status, run_state, run_time_left, sweep_states
from plastic.train import lock as lock_module
from plastic.train.lock import LOCK_NAME, RunLockedError, is_locked, run_lock

HEADER = "step,env_steps,updates,episodes,resets,steps_per_s,updates_per_s,loss\n"


def make_run(out: Path, run_id: str, *, steps: int = 1000, rows: list[tuple[int, float]] = (),
             summary: dict | None = None, partial_row: str = "") -> Path:
    run_dir = out / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"train": {"steps": steps}}))
    if rows:
        body = "".join(f"{step},{step},{2 * step},1,0,{pace},{2 * pace},0.5\n" for step, pace in rows)
        (run_dir / "train.csv").write_text(HEADER + body + partial_row)
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


@pytest.fixture
def sweep_dir(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({
        "benchmark": "minatar", "games": ["breakout", "asterix"], "presets": ["drq", "plastic"],
        "seeds": [0, 1], "command": ["plastic", "sweep", "minatar"]}))
    make_run(out, "breakout/drq/seed0", rows=[(1000, 60.0)], summary={"score": 5.5, "wall_seconds": 1800})
    # running: 400 of 1000 steps, its last three windows logged at 40, 50 and 60 steps/s -> 600 /
    # median 50 = 12 s left; the row being written (no newline yet) is not read
    make_run(out, "breakout/plastic/seed0", rows=[(100, 40.0), (200, 50.0), (400, 60.0)],
             partial_row="600,600,1")
    # killed: it had begun and its lock file stayed behind, but no process holds the lock
    interrupted = make_run(out, "asterix/drq/seed0", rows=[(250, 70.0)])
    (interrupted / LOCK_NAME).write_text("12345")
    make_run(out, "asterix/plastic/seed0", rows=[(100, 70.0)])
    (out / "sweep_status.json").write_text(json.dumps({"runs": {
        "asterix/plastic/seed0": {"status": "failed", "error": "RuntimeError: boom"},
        "breakout/drq/seed1": {"status": "failed", "error": "ValueError: another config there"}}}))
    return out


def test_each_run_of_the_plan_is_read_from_its_files(sweep_dir):
    with run_lock(sweep_dir / "breakout/plastic/seed0"):  # as the process running it holds it
        sweep, states = sweep_states(sweep_dir)
        text = format_status(sweep_dir, sweep, states)
    by_id = {s.run_id: s for s in states}
    assert [s.run_id for s in states][:4] == ["breakout/drq/seed0", "breakout/plastic/seed0",
                                             "asterix/drq/seed0", "asterix/plastic/seed0"]  # seeds outermost
    assert {run_id: s.state for run_id, s in by_id.items()} == {
        "breakout/drq/seed0": "finished", "breakout/plastic/seed0": "running",
        "asterix/drq/seed0": "interrupted", "asterix/plastic/seed0": "failed",
        "breakout/drq/seed1": "failed", "breakout/plastic/seed1": "not started",
        "asterix/drq/seed1": "not started", "asterix/plastic/seed1": "not started"}
    finished, running = by_id["breakout/drq/seed0"], by_id["breakout/plastic/seed0"]
    assert (finished.score, finished.seconds) == (5.5, 1800)
    assert running.fraction == pytest.approx(0.4) and running.seconds_left == pytest.approx(12.0)
    assert by_id["asterix/drq/seed0"].fraction == pytest.approx(0.25)
    assert by_id["asterix/drq/seed0"].seconds_left is None  # nobody runs it: no time left to say
    assert by_id["asterix/plastic/seed0"].error == "RuntimeError: boom"
    assert text.splitlines()[0].endswith(
        "(minatar, 8 runs): 1 running, 1 interrupted, 2 failed, 1 finished, 3 not started")
    assert "score 5.5  (30 min)" in text and "40%  ~12 s left" in text
    assert "not started: breakout/plastic/seed1, asterix/drq/seed1, asterix/plastic/seed1" in text
    assert "run the sweep's command again" in text


def test_no_time_left_is_said_before_learning_starts(tmp_path):
    # a resumed or new run still filling its replay: 1000 steps at 3000 steps/s, no update yet
    run_dir = make_run(tmp_path, "freeway/plastic/seed0", steps=100_000, rows=[(1000, 3000.0)])
    (run_dir / "config.json").write_text(json.dumps({"suite": "minatar", "train": {"steps": 100_000}}))
    rows = (run_dir / "train.csv").read_text().replace("1000,1000,2000,", "1000,1000,0,")
    (run_dir / "train.csv").write_text(rows)
    with run_lock(run_dir):
        state = run_state(run_dir)
    assert state.state == "running" and state.fraction == pytest.approx(0.01)
    assert state.seconds_left is None
    # once it updates, the pace is the learning pace
    (run_dir / "train.csv").write_text(rows + "3000,3000,1000,2,0,20.0,20.0,0.5\n")
    with run_lock(run_dir):
        resumed = run_state(run_dir)
    assert resumed.seconds_left == pytest.approx(97_000 / 20.0)
    assert resumed.seconds_whole == pytest.approx(100_000 / 20.0)  # all its steps at that pace


def test_one_window_that_holds_a_pause_does_not_set_the_time_left(tmp_path):
    # 20 steps/s, then a window in which the process was stopped for minutes (1.4 steps/s), and a
    # row still being written: the median of the last three windows is the pace, not the pause
    run_dir = make_run(tmp_path, "freeway/plastic/seed2", steps=100_000,
                       rows=[(9000, 99.0), (10_000, 20.0), (11_000, 19.0), (12_000, 1.4)],
                       partial_row="13000,13000,2")
    (run_dir / "config.json").write_text(json.dumps({"suite": "minatar", "train": {"steps": 100_000}}))
    with run_lock(run_dir):
        assert run_state(run_dir).seconds_left == pytest.approx(88_000 / 19.0)
    # a pace that really changed takes over once it fills most of the windows
    (run_dir / "train.csv").write_text((run_dir / "train.csv").read_text().replace(
        "13000,13000,2", "13000,13000,26000,1,0,2.0,4.0,0.5\n"))
    with run_lock(run_dir):
        assert run_state(run_dir).seconds_left == pytest.approx(87_000 / 2.0)


def test_log_rows_are_read_whole_from_the_end_of_the_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("step,pace\n12000,1.5\n13000,2.5\n14000,3.5\n15000,4")  # the last row is unfinished
    assert last_log_rows(path, 5) == [{"step": "12000", "pace": "1.5"}, {"step": "13000", "pace": "2.5"},
                                      {"step": "14000", "pace": "3.5"}]
    assert last_log_row(path) == {"step": "14000", "pace": "3.5"}
    # a tail that begins inside a row ("000,2.5" would split into two fields too) starts at the next
    tail = len("000,2.5\n14000,3.5\n15000,4")
    assert last_log_rows(path, 5, tail_bytes=tail) == [{"step": "14000", "pace": "3.5"}]
    assert last_log_rows(tmp_path / "missing.csv", 3) == [] and last_log_row(tmp_path / "missing.csv") is None


def test_the_lock_is_released_after_a_run_ends(sweep_dir):
    with run_lock(sweep_dir / "breakout/plastic/seed0"):
        pass
    states = {s.run_id: s.state for s in sweep_states(sweep_dir)[1]}
    assert states["breakout/plastic/seed0"] == "interrupted"


def test_command_exit_status_and_a_directory_without_a_sweep(sweep_dir, tmp_path, capsys):
    assert main(["status", str(sweep_dir)]) == 1
    assert "1 finished" in capsys.readouterr().out
    done = tmp_path / "done"
    done.mkdir()
    (done / "sweep.json").write_text(json.dumps({"benchmark": "minatar", "games": ["breakout"],
                                                 "presets": ["drq"], "seeds": [0]}))
    make_run(done, "breakout/drq/seed0", summary={"score": 1.0})
    assert main(["status", str(done)]) == 0
    assert "1 finished, 0 not started" in capsys.readouterr().out
    assert main(["status", str(tmp_path)]) == 2
    assert "holds neither a sweep (sweep.json) nor a run (config.json)" in capsys.readouterr().err
    assert main(["status", str(tmp_path / "typo")]) == 2
    assert f"no such directory: {tmp_path / 'typo'}" in capsys.readouterr().err


def test_a_run_directory_alone(tmp_path, capsys):
    run_dir = make_run(tmp_path, "breakout/plastic/seed0", rows=[(300, 25.0)])
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "suite": "minatar"}))
    with run_lock(run_dir):
        assert main(["status", str(run_dir)]) == 1
    # 700 steps to go at 25 steps/s: 28 s
    assert capsys.readouterr().out.split() == ["running", str(run_dir), "30%", "~28", "s", "left"]
    assert main(["status", str(run_dir)]) == 1  # nobody holds it now
    said = capsys.readouterr().out
    assert said.splitlines()[0].split() == ["interrupted", str(run_dir), "30%"]
    assert "again to resume it" in said
    (run_dir / "summary.json").write_text(json.dumps({"score": 3.25, "wall_seconds": 7200}))
    assert main(["status", str(run_dir)]) == 0
    assert capsys.readouterr().out.split() == ["finished", str(run_dir), "score", "3.25", "(2.0", "h)"]
    # with its CPU time (summary.json's cpu_time, since b15da68): a run paused for half its wall time
    (run_dir / "summary.json").write_text(json.dumps({"score": 3.25, "wall_seconds": 7200,
                                                      "cpu_time": {"updates": 3000, "total": 3600}}))
    assert main(["status", str(run_dir)]) == 0
    assert capsys.readouterr().out.split() == ["finished", str(run_dir), "score", "3.25", "(2.0", "h;",
                                               "60", "min", "CPU)"]


def test_a_run_starting_while_status_looks_waits_a_moment_rather_than_fail(tmp_path, monkeypatch):
    (tmp_path / LOCK_NAME).write_text("")
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # the instant `is_locked` holds it
    assert is_locked(tmp_path) is False  # shared with another observer: nobody runs it
    pauses = []

    def observer_lets_go(seconds):  # run_lock's first pause between retries: the observer is done
        if not pauses:
            os.close(fd)
        pauses.append(seconds)

    monkeypatch.setattr(lock_module.time, "sleep", observer_lets_go)
    with run_lock(tmp_path):
        assert pauses == [0.05]  # it met the observer's lock once, waited, and got it
        assert is_locked(tmp_path)
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"), run_lock(tmp_path):
            pass  # a real holder: refused
    assert not is_locked(tmp_path)


def test_a_sweep_extended_with_other_games_plans_only_what_its_commands_asked(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    out.mkdir()
    first = ["plastic", "sweep", "minatar", "--games", "breakout,asterix", "--presets", "drq", "--seeds", "1"]
    second = ["/src/plastic/cli.py", "sweep", "minatar", "--games=breakout", "--presets", "drq",
              "--seeds", "1-1", "--out", str(out)]
    sweep = {"benchmark": "minatar", "games": ["breakout", "asterix"], "presets": ["drq"], "seeds": [0, 1],
             "history": [{"command": first}, {"command": second}]}
    (out / "sweep.json").write_text(json.dumps(sweep))
    planned = [s.run_id for s in sweep_states(out)[1]]
    assert planned == ["breakout/drq/seed0", "asterix/drq/seed0", "breakout/drq/seed1"]
    # a command that is not recorded (the Python API) or does not parse: every combination
    for unknown in (None, ["plastic", "sweep", "minatar", "--no-such-flag"]):
        (out / "sweep.json").write_text(json.dumps({**sweep, "history": [{"command": first},
                                                                           {"command": unknown}]}))
        assert len(sweep_states(out)[1]) == 4
    # a DMC task that needs dm_control to be checked, where it cannot be imported: every combination
    import plastic.envs.dmc_tasks as dmc_tasks
    from plastic.errors import MissingDependencyError

    def no_dm_control():
        raise MissingDependencyError("mujoco is not installed")

    dmc_command = ["plastic", "sweep", "dmc-medium", "--tasks", "fish-swim", "--seeds", "1"]
    monkeypatch.setattr(dmc_tasks, "all_dmc_task_names", no_dm_control)
    assert planned_by_command(dmc_command) is None
    # a task whose settings plastic holds (the authors' short tasks) is known without dm_control
    dmc_command[4] = "cartpole-swingup"
    assert planned_by_command(dmc_command) == (["cartpole-swingup"], ["drq", "plastic"], [0])
    monkeypatch.undo()
    # a run copied in that no command asked for is still shown
    (out / "sweep.json").write_text(json.dumps(sweep))
    make_run(out, "asterix/drq/seed1", summary={"score": 2.0})
    assert [s.run_id for s in sweep_states(out)[1]] == [*planned, "asterix/drq/seed1"]


def test_run_time_left_by_hand():
    states = [RunState("pong/drq/seed0", "finished", preset="drq", seconds=100.0),
              RunState("boxing/drq/seed0", "finished", preset="drq", seconds=300.0),
              RunState("pong/drq/seed1", "running", preset="drq", fraction=0.5, seconds_left=50.0),
              RunState("boxing/drq/seed1", "interrupted", preset="drq", fraction=0.25),
              RunState("kung_fu_master/drq/seed0", "not started", preset="drq"),
              RunState("pong/plastic/seed0", "not started", preset="plastic")]
    # 50 s of the running run, 3/4 and all of drq's mean (200 s), plastic unknown: none finished
    assert run_time_left(states) == (pytest.approx(50 + 0.75 * 200 + 200), 1)
    text = format_status(Path("sweep"), {"benchmark": "atari100k"}, states)
    assert "≈ 7 min of run time left" in text  # 400 s and "+ 1 run(s) of no known length yet" in text
    done = format_status(Path("sweep"), {"benchmark": "atari100k"}, states[:2])
    assert "left" not in done
    # two runs at a time (a sweep's two workers, or two sweep processes): half the run time, unless
    # a running run alone takes longer
    two = [RunState("pong/drq/seed0", "finished", preset="drq", seconds=1200.0),
           RunState("pong/drq/seed1", "running", preset="drq", fraction=0.5, seconds_left=600.0),
           RunState("boxing/drq/seed1", "running", preset="drq", fraction=0.5, seconds_left=600.0),
           RunState("kung_fu_master/drq/seed0", "not started", preset="drq")]
    assert run_time_left(two) == (pytest.approx(2400.0), 0)
    assert format_status(Path("sweep"), {"benchmark": "atari100k"}, two).endswith(
        "≈ 40 min of run time left (one run at a time; runs not running at the pace of a running "
        "run of their preset, else at the mean of this sweep's finished runs of it); ≈ 20 min with 2 "
        "runs at a time, as now")
    two[2] = dataclasses.replace(two[2], seconds_left=3000.0)  # 4,800 s in all, but one run needs 3,000
    assert format_status(Path("sweep"), {"benchmark": "atari100k"}, two).endswith(
        "; ≈ 50 min with 2 runs at a time, as now")
    assert "at a time, as now" not in format_status(Path("sweep"), {"benchmark": "atari100k"}, two[:3:2])


def test_runs_not_running_are_timed_at_the_present_pace_of_their_preset():
    # plastic's finished run took 10 h (one thread, paused at times); its running run would take
    # 4 h at its present pace (two threads): the interrupted and the waiting plastic run count 4 h
    # a run, not 10. drq has no finished run, but a running one: 2 h a run, not "unknown".
    states = [RunState("breakout/plastic/seed0", "finished", preset="plastic", seconds=36_000.0),
              RunState("boxing/plastic/seed0", "running", preset="plastic", fraction=0.5,
                       seconds_left=7_200.0, seconds_whole=14_400.0),
              RunState("pong/plastic/seed0", "interrupted", preset="plastic", fraction=0.25),
              RunState("seaquest/plastic/seed0", "not started", preset="plastic"),
              RunState("boxing/drq/seed0", "running", preset="drq", fraction=0.5, seconds_left=3_000.0,
                       seconds_whole=6_000.0),
              RunState("pong/drq/seed0", "running", preset="drq", fraction=0.2, seconds_left=9_600.0,
                       seconds_whole=12_000.0),
              RunState("seaquest/drq/seed0", "not started", preset="drq")]
    assert run_time_left(states) == (pytest.approx(
        7_200 + 0.75 * 14_400 + 14_400 + 3_000 + 9_600 + (6_000 + 12_000) / 2), 0)
    # a running run still filling its replay has no pace yet: the finished runs' mean again
    states[1] = dataclasses.replace(states[1], seconds_left=None, seconds_whole=None)
    assert run_time_left(states)[0] == pytest.approx(
        0.75 * 36_000 + 36_000 + 3_000 + 9_600 + 9_000)


def test_runs_that_only_an_earlier_command_asked_for_are_shown_apart_and_not_timed(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    wide = ["plastic", "sweep", "minatar", "--games", "breakout", "--presets", "drq", "--seeds", "3"]
    narrow = ["plastic", "sweep", "minatar", "--games", "breakout", "--presets", "drq", "--seeds", "2"]
    (out / "sweep.json").write_text(json.dumps({
        "benchmark": "minatar", "games": ["breakout"], "presets": ["drq"], "seeds": [0, 1, 2],
        "history": [{"command": wide}, {"command": narrow}]}))
    make_run(out, "breakout/drq/seed0", summary={"score": 5.0, "wall_seconds": 600})
    make_run(out, "breakout/drq/seed1", rows=[(500, 50.0)])  # interrupted half-way: 300 s of 600 left
    _, states = sweep_states(out)
    assert [(s.run_id, s.state, s.in_last_command) for s in states] == [
        ("breakout/drq/seed0", "finished", True), ("breakout/drq/seed1", "interrupted", True),
        ("breakout/drq/seed2", "not started", False)]
    assert run_time_left(states) == (pytest.approx(300.0), 0)  # seed 2 (600 s) is not counted
    lines = format_status(out, {"benchmark": "minatar"}, states).splitlines()
    earlier = "  not started, asked for by an earlier command only (the last one skips them): "
    assert earlier + "breakout/drq/seed2" in lines
    assert not any(line.startswith("  not started:") for line in lines)
    assert lines[-1].startswith("  ≈ 5 min of run time left") and lines[-1].endswith(
        "not counting 1 run(s) not finished that only an earlier command asked for")
    # the wide command again: seed 2 is the last command's too, and counted
    history = [{"command": wide}, {"command": narrow}, {"command": wide}]
    sweep = json.loads((out / "sweep.json").read_text())
    (out / "sweep.json").write_text(json.dumps({**sweep, "history": history}))
    _, states = sweep_states(out)
    assert all(s.in_last_command for s in states) and run_time_left(states) == (pytest.approx(900.0), 0)


def test_a_running_run_of_an_earlier_command_is_timed_and_marked():
    states = [RunState("pong/drq/seed0", "finished", preset="drq", seconds=100.0),
              RunState("pong/drq/seed1", "running", preset="drq", fraction=0.5, seconds_left=60.0,
                       in_last_command=False),
              RunState("pong/drq/seed2", "not started", preset="drq", in_last_command=False)]
    assert run_time_left(states) == (pytest.approx(60.0), 0)
    lines = format_status(Path("sweep"), {"benchmark": "atari100k"}, states).splitlines()
    assert any("pong/drq/seed1" in line and line.endswith("(an earlier command's run)") for line in lines)
    assert lines[-1].endswith("not counting 1 run(s) not finished that only an earlier command asked for")
    # an interrupted run of an earlier command: the last command would not resume it, so no such hint
    interrupted = [*states, RunState("pong/drq/seed3", "interrupted", preset="drq", fraction=0.5,
                                     in_last_command=False)]
    text = format_status(Path("sweep"), {"benchmark": "atari100k"}, interrupted)
    assert "run the sweep's command again" not in text and "not counting 2 run(s)" in text
    interrupted[-1] = dataclasses.replace(interrupted[-1], in_last_command=True)
    text = format_status(Path("sweep"), {"benchmark": "atari100k"}, interrupted)
    assert "run the sweep's command again" in text
