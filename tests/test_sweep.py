"""Sweeps: planning and input checks, real tiny sweeps on the local backend and on a local Ray
instance, re-runs that redo nothing, and a failing run that is recorded while the others finish."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import torch

from plastic.configs import build_config
from plastic.experiments.backends import LocalBackend, RayBackend, make_backend, parse_resources
from plastic.experiments.cli import main
from plastic.experiments.sweep import (
    SWEEP_FILE,
    Progress,
    _differing_settings,
    check_existing_sweep,
    make_spec,
    parse_seeds,
    plan_jobs,
    run_sweep,
    write_sweep_file,
)
from plastic.experiments.worker import execute

TINY = {"train.steps": "150", "train.learning_starts": "100", "agent.batch_size": "4",
        "train.eval_episodes": "1", "env.max_episode_steps": "50", "agent.replay_capacity": "500",
        "train.replay_ratio": "0.5"}


def summary_mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("summary.json")}


def test_seeds_resources_and_spec_checks(tmp_path):
    assert parse_seeds("5") == [0, 1, 2, 3, 4]
    assert parse_seeds(3) == [0, 1, 2] and parse_seeds("3-5") == [3, 4, 5] and parse_seeds("0,7") == [0, 7]
    for bad in ("x", "0", "1,1", "-2"):
        with pytest.raises(ValueError, match="seeds"):
            parse_seeds(bad)
    with pytest.raises(ValueError, match="for seed 0 alone write --seeds 0-0"):
        parse_seeds("0")
    assert parse_seeds("0-0") == [0]
    assert parse_resources("cpu=2,gpu=0.5") == {"cpu": 2.0, "gpu": 0.5}
    assert parse_resources(None) == {"cpu": 1.0, "gpu": 0.0}
    with pytest.raises(ValueError, match="NAME=AMOUNT"):
        parse_resources("gpu")
    assert make_backend("ray", resources={"cpu": 2.0, "gpu": 0.0}).threads == 2
    spread = LocalBackend(workers=4, gpus=["0", "1", "2"])  # runs go to the least busy GPU
    assert spread._pick_gpu(["0", "0", "1"]) == "2" and spread._pick_gpu(["0", "1", "2"]) == "0"
    assert LocalBackend(workers=2, gpus=["0"])._pick_gpu([]) is None  # one GPU: nothing to spread
    with pytest.raises(ValueError, match="valid backends: local, ray"):
        make_backend("slurm")
    with pytest.raises(ValueError, match="valid benchmarks: atari100k, minatar, dmc-medium, synthetic"):
        make_spec("procgen")
    with pytest.raises(ValueError, match="valid: asterix, breakout"):
        make_spec("minatar", games="pong")
    with pytest.raises(ValueError, match="unknown preset"):
        make_spec("minatar", presets="drq,dqn")
    with pytest.raises(ValueError, match="--steps does not apply"):
        make_spec("synthetic", steps=10)
    with pytest.raises(ValueError, match="unknown config key"):
        plan_jobs(make_spec("minatar", overrides={"sam.rhoo": "0.1"}, out=tmp_path))
    # keys that name the runs come from the sweep's own flags (three runs of seed 7 named seed 0-2)
    for benchmark, overrides, flag in (("minatar", {"seed": "7"}, "--seeds"),
                                       ("minatar", {"game": "x"}, "--games"),
                                       ("synthetic", {"method": "sam"}, "--presets"),
                                       ("synthetic", {"seed": "7"}, "--seeds")):
        with pytest.raises(ValueError, match=f"names a sweep's runs and their directories; use {flag}"):
            make_spec(benchmark, overrides=overrides)
    with pytest.raises(ValueError, match="--set plastic:preset=...: preset names"):
        make_spec("minatar", preset_overrides={"plastic": {"preset": "drq"}})


def test_two_labels_for_one_agent_are_refused_unless_a_per_preset_setting_tells_them_apart(tmp_path):
    for presets, first, second in (("plastic,drq+ln+crelu+sam+reset", "plastic", "drq+ln+crelu+sam+reset"),
                                   ("drq,drq+sam,drq+ln+sam,drq+sam+ln", "drq+ln+sam", "drq+sam+ln")):
        same = f"'{re.escape(first)}' and '{re.escape(second)}' make the same agent"
        with pytest.raises(ValueError, match=same):
            plan_jobs(make_spec("minatar", presets=presets, seeds=1, out=tmp_path))
    # a Reset-interval ablation under its own label is another agent
    spec = make_spec("minatar", presets="plastic,drq+ln+crelu+sam+reset", seeds=1, games="breakout",
                     out=tmp_path, preset_overrides={"drq+ln+crelu+sam+reset": {"reset.interval": "5000"}})
    intervals = {job["config"]["preset"]: job["config"]["reset"]["interval"] for job in plan_jobs(spec)}
    assert intervals["drq+ln+crelu+sam+reset"] == 5000 != intervals["plastic"]
    with pytest.raises(ValueError, match="preset 'drq\\+sam\\+sam' names 'sam' more than once"):
        make_spec("minatar", presets="drq+sam+sam", seeds=1, out=tmp_path)


def test_plan_covers_every_game_preset_seed_with_its_config(tmp_path):
    spec = make_spec("atari100k", presets="drq,plastic", seeds=5, replay_ratio=4, out=tmp_path)
    jobs = plan_jobs(spec)
    assert len(jobs) == 26 * 2 * 5 and len({j["run_dir"] for j in jobs}) == len(jobs)
    job = next(j for j in jobs if j["id"] == "bank_heist/plastic/seed3")
    assert job["run_dir"] == str(tmp_path.resolve() / "bank_heist" / "plastic" / "seed3")
    expected = build_config("atari", "bank_heist", "plastic", seed=3, overrides={"train.replay_ratio": 4})
    assert job["config"] == expected.to_dict() and job["config"]["train"]["replay_ratio"] == 4.0
    assert [j["id"] for j in jobs[:2]] == ["alien/drq/seed0", "alien/plastic/seed0"]  # seeds outermost
    camel = plan_jobs(make_spec("atari100k", games="BankHeist,pong", presets="drq", seeds=1, out=tmp_path))
    assert [j["id"] for j in camel] == ["bank_heist/drq/seed0", "pong/drq/seed0"]
    synthetic = plan_jobs(make_spec("synthetic", presets="vanilla", seeds=1, games="label", out=tmp_path,
                                    overrides={"chunks": "3", "lr": "0.05"}))
    assert synthetic[0]["config"]["chunks"] == 3 and synthetic[0]["config"]["lr"] == 0.05
    assert synthetic[0]["config"]["task"] == "label" and synthetic[0]["config"]["method"] == "vanilla"
    # the authors' profile, as `plastic synthetic` uses, unless --set says otherwise
    assert synthetic[0]["config"]["fidelity"] == "authors"
    intent = plan_jobs(make_spec("synthetic", presets="vanilla", seeds=1, games="label", out=tmp_path,
                                 overrides={"fidelity": "intent"}))
    assert intent[0]["config"]["fidelity"] == "intent"
    out = io.StringIO()
    run_sweep(spec, LocalBackend(workers=1), dry_run=True, stream=out)
    assert out.getvalue().count("would run") == 260 and not (tmp_path / SWEEP_FILE).exists()


def test_dmc_medium_sweep_plans_the_eleven_tasks_with_their_settings(tmp_path):
    from plastic.envs.dmc_tasks import DMC_MEDIUM_TASKS

    jobs = plan_jobs(make_spec("dmc-medium", seeds=2, replay_ratio=2, out=tmp_path))
    assert sorted({j["config"]["game"] for j in jobs}) == sorted(DMC_MEDIUM_TASKS) and len(jobs) == 44
    cheetah = next(j["config"] for j in jobs if j["id"] == "cheetah-run/plastic/seed1")
    assert cheetah["suite"] == "dmc" and cheetah["env"]["action_repeat"] == 4
    # a Reset every 100k loop steps at any replay ratio, as the authors' DMC script counts
    assert cheetah["sam"]["rho"] == 0.002
    assert (cheetah["reset"]["interval"], cheetah["reset"]["interval_unit"]) == (100_000, "agent_steps")
    walker = next(j["config"] for j in jobs if j["id"] == "walker-run/drq/seed0")
    assert walker["train"]["steps"] == 1_000_000 and not walker["sam"]["enabled"]
    other = plan_jobs(make_spec("dmc-medium", games="cartpole-swingup", presets="drq", seeds=1, out=tmp_path))
    assert [j["id"] for j in other] == ["cartpole-swingup/drq/seed0"]
    with pytest.raises(ValueError, match="unknown DeepMind Control task 'walker-fly'.*walker-run"):
        make_spec("dmc-medium", games="walker-fly")


def test_worker_turns_errors_into_results(tmp_path):
    job = {"id": "breakout/drq/seed0", "benchmark": "minatar", "run_dir": str(tmp_path / "run"),
           "config": {**build_config("minatar", "breakout", "drq").to_dict(), "game": "pong"}}
    result = execute(job)
    assert result["status"] == "failed" and "Unknown MinAtar game 'pong'" in result["error"]
    assert "Traceback" in result["traceback"] and result["seconds"] >= 0
    assert "Unknown MinAtar game" in (tmp_path / "run" / "sweep.log").read_text()


def test_a_worker_leaves_a_run_another_process_holds_alone(tmp_path, monkeypatch):
    """A worker whose run another process holds (another sweep over the same directory) says so
    in its result and builds, trains and writes nothing; the same when the other process takes
    the directory in the instant between the worker's look and its run's own lock."""
    import os

    import plastic.train.lock as lock_module
    from plastic.train.lock import run_lock

    run_dir = tmp_path / "run"
    job = {"id": "breakout/drq/seed0", "benchmark": "minatar", "run_dir": str(run_dir),
           "config": build_config("minatar", "breakout", "drq", overrides=TINY).to_dict()}
    run_dir.mkdir()
    holder = f"another process (pid {os.getpid()})"
    with run_lock(run_dir):  # a second open file: flock makes it a second holder, as a process would be
        result = execute(job)
        assert (result["status"], result["holder"]) == ("held", holder)
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # not even a log line
        monkeypatch.setattr(lock_module, "is_locked", lambda run_dir: False)  # the instant before
        result = execute(job)
    assert (result["status"], result["holder"]) == ("held", holder)
    assert "is running the run in" in result["error"]
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "sweep.log"]  # no config, no logs
    log = (run_dir / "sweep.log").read_text()
    assert "left alone: another process" in log and "Traceback" not in log


def test_a_run_finished_meanwhile_by_another_process_is_reported_not_timed(tmp_path):
    run_dir = tmp_path / "run"
    job = {"id": "breakout/drq/seed0", "benchmark": "minatar", "run_dir": str(run_dir),
           "config": build_config("minatar", "breakout", "drq", overrides=TINY).to_dict()}
    trained = execute(job)  # "another process" trains it for real
    assert trained["status"] == "finished" and "elsewhere" not in trained
    log = (run_dir / "sweep.log").read_text()
    again = execute(job)  # a second sweep's worker, planned before the run finished
    assert (again["status"], again["elsewhere"], again["seconds"]) == ("finished", True, 0.0)
    assert again["summary"]["score"] == trained["summary"]["score"]
    assert (run_dir / "sweep.log").read_text() == log  # nothing run, nothing written

    progress = Progress(tmp_path, total=2, stream=io.StringIO())
    progress.start(job)
    progress.result(again)
    said = progress.stream.getvalue()
    assert "breakout/drq/seed0 was finished meanwhile by another process: score" in said
    assert "(0 s)" not in said and progress.finished_now == 0  # no pace for the time left from it
    entry = progress.status()["runs"]["breakout/drq/seed0"]
    assert entry["status"] == "finished" and entry["seconds"] == trained["summary"]["wall_seconds"]


def test_two_sweep_processes_keep_each_others_entries_in_the_status_file(tmp_path):
    first = Progress(tmp_path, total=2, stream=io.StringIO())
    first.start({"id": "a/drq/seed0"})
    second = Progress(tmp_path, total=2, stream=io.StringIO())  # started later: reads a as running
    second.start({"id": "b/drq/seed0"})
    first.result({"id": "a/drq/seed0", "status": "finished", "summary": {"score": 3.0}, "seconds": 5.0})
    second.result({"id": "b/drq/seed0", "status": "failed", "error": "RuntimeError: boom"})
    runs = json.loads((tmp_path / "sweep_status.json").read_text())["runs"]
    assert (runs["a/drq/seed0"]["status"], runs["a/drq/seed0"]["score"]) == ("finished", 3.0)
    assert runs["b/drq/seed0"]["status"] == "failed"

    third = Progress(tmp_path, total=2, stream=io.StringIO())
    third.start({"id": "b/drq/seed0"})
    fourth = Progress(tmp_path, total=2, stream=io.StringIO())
    fourth.start({"id": "c/drq/seed0"})
    fourth.interrupted()  # Ctrl-C in one process: only its own runs become interrupted
    runs = json.loads((tmp_path / "sweep_status.json").read_text())["runs"]
    assert runs["c/drq/seed0"]["status"] == "interrupted" and runs["b/drq/seed0"]["status"] == "running"
    # a worker that found its run taken by another process leaves that process's entry as it is
    third.start({"id": "a/drq/seed0"})
    fourth.start({"id": "a/drq/seed0"})
    fourth.result({"id": "a/drq/seed0", "status": "held", "error": "...",
                   "holder": "another process (pid 7)"})
    third.result({"id": "a/drq/seed0", "status": "finished", "summary": {"score": 4.0}, "seconds": 1.0})
    fourth.result({"id": "c/drq/seed0", "status": "finished", "summary": {"score": 1.0}, "seconds": 1.0})
    runs = json.loads((tmp_path / "sweep_status.json").read_text())["runs"]
    assert (runs["a/drq/seed0"]["status"], runs["a/drq/seed0"]["score"]) == ("finished", 4.0)
    assert "left alone a/drq/seed0: another process (pid 7) runs it" in fourth.stream.getvalue()
    assert "1 left to another process" in fourth.line()


def test_an_older_entry_never_overwrites_what_another_process_wrote_later(tmp_path):
    first = Progress(tmp_path, total=2, stream=io.StringIO())
    first.start({"id": "x/drq/seed0"})
    first.result({"id": "x/drq/seed0", "status": "failed", "error": "RuntimeError: boom"})
    second = Progress(tmp_path, total=2, stream=io.StringIO())  # retries the failed run, and finishes it
    second.start({"id": "x/drq/seed0"})
    second.result({"id": "x/drq/seed0", "status": "finished", "summary": {"score": 2.0}, "seconds": 1.0})
    first.start({"id": "y/drq/seed0"})  # the first process saves again: its failure is history
    runs = json.loads((tmp_path / "sweep_status.json").read_text())["runs"]
    assert runs["x/drq/seed0"]["status"] == "finished" and runs["y/drq/seed0"]["status"] == "running"
    # each process's counts are its own (its exit status comes from them); the runs are shared
    assert (first.status()["failed"], second.status()["failed"], second.status()["finished"]) == (1, 0, 1)
    assert first.status()["runs"]["x/drq/seed0"]["status"] == "finished"


def test_two_sweeps_started_together_keep_both_commands_in_the_history(tmp_path):
    import threading

    from plastic.train.lock import exclusive

    spec = make_spec("minatar", presets="drq", seeds=1, games="breakout", overrides=TINY, out=tmp_path)
    write_sweep_file(spec, "local", ["plastic", "sweep", "first"])
    with exclusive(tmp_path / ".sweep.json.lock"):  # another process between its read and its write
        writer = threading.Thread(target=write_sweep_file,
                                  args=(spec, "local", ["plastic", "sweep", "second"]))
        writer.start()
        writer.join(0.3)
        assert writer.is_alive()  # it waits for the lock rather than read a file about to change
    writer.join(10)
    history = json.loads((tmp_path / SWEEP_FILE).read_text())["history"]
    assert [entry["command"][-1] for entry in history] == ["first", "second"]


@pytest.mark.parametrize("threads", [1, 2])
def test_a_workers_threads_reach_its_run(tmp_path, monkeypatch, threads):
    """plastic sweep --threads N: the run trains with N torch threads (it used to reset itself to 1)."""
    from plastic.train import loop

    used = []
    real = loop.configure_threads
    monkeypatch.setattr(loop, "configure_threads",
                        lambda wanted: used.append(wanted) or real(wanted))
    config = build_config("minatar", "breakout", "drq", overrides={
        "train.steps": 20, "train.learning_starts": 10, "train.eval_episodes": 1,
        "train.eval_envs": 1, "train.checkpoint_interval": 0, "train.metrics_interval": 0})
    job = {"id": "breakout/drq/seed0", "benchmark": "minatar", "run_dir": str(tmp_path / "run"),
           "config": config.to_dict()}
    try:
        assert execute(job, threads)["status"] == "finished"
    finally:
        torch.set_num_threads(1)
    assert used == [threads]


class ScriptedBackend:
    """Stands in for a backend: 'runs' each job by reporting a scripted result, no processes."""

    def __init__(self, failing: set[str]) -> None:
        self.failing, self.ran = failing, []

    def describe(self) -> str:
        return "scripted"

    def run(self, jobs, on_start, on_result, on_tick) -> None:
        for job in jobs:
            on_start(job)
        Path(jobs[0]["run_dir"]).mkdir(parents=True, exist_ok=True)
        (Path(jobs[0]["run_dir"]) / "train.csv").write_text("step,updates\n60,10\n75,12\n")
        on_tick()  # nothing finished yet: the sweep says how far the running runs are
        for job in jobs:
            self.ran.append(job["id"])
            if job["id"] in self.failing:
                on_result({"id": job["id"], "status": "failed", "error": "RuntimeError: boom",
                           "traceback": "Traceback ...", "seconds": 1.0})
            else:
                Path(job["run_dir"]).mkdir(parents=True, exist_ok=True)
                (Path(job["run_dir"]) / "config.json").write_text(json.dumps(job["config"]))
                (Path(job["run_dir"]) / "summary.json").write_text(json.dumps({"score": 7.0}))
                on_result({"id": job["id"], "status": "finished", "summary": {"score": 7.0}, "seconds": 2.0})


def test_progress_says_a_running_runs_time_left_from_its_pace_since_first_read(tmp_path):
    progress = Progress(tmp_path, total=1, stream=io.StringIO())
    assert progress.how_far("a/drq/seed0", None, now=50.0) == ""
    assert progress.how_far("a/drq/seed0", 0.10, now=100.0) == " 10%"  # resumed at 10%: no pace yet
    # 0.20 of the run in 100 s: the last 0.70 take 350 s
    assert progress.how_far("a/drq/seed0", 0.30, now=200.0) == " 30% (~6 min left)"
    assert progress.how_far("a/drq/seed0", 0.30, now=200.0) == " 30% (~6 min left)"
    assert progress.how_far("b/drq/seed0", 0.0, now=0.0) == " 0%"
    assert progress.how_far("b/drq/seed0", 0.01, now=3600.0) == " 1% (~99.0 h left)"


def test_sweep_bookkeeping_skips_refuses_and_records(tmp_path):
    out = tmp_path / "sweep"
    # seed 3's directory holds a run with another config: refused before anything runs, never touched
    other = build_config("minatar", "breakout", "drq", seed=3, overrides={**TINY, "train.steps": "999"})
    (out / "breakout" / "drq" / "seed3").mkdir(parents=True)
    (out / "breakout" / "drq" / "seed3" / "config.json").write_text(json.dumps(other.to_dict()))
    spec = make_spec("minatar", presets="drq", seeds=4, games="breakout", overrides=TINY, out=out)
    backend = ScriptedBackend(failing={"breakout/drq/seed1"})
    stream = io.StringIO()
    status = run_sweep(spec, backend, stream=stream, heartbeat=0.0)
    assert backend.ran == ["breakout/drq/seed0", "breakout/drq/seed1", "breakout/drq/seed2"]
    assert "(3 running): breakout/drq/seed0 50%, breakout/drq/seed1, breakout/drq/seed2" in stream.getvalue()
    assert (status["finished"], status["failed"], status["total"]) == (2, 2, 4)
    failed = status["runs"]["breakout/drq/seed1"]
    assert (failed["status"], failed["error"], failed["traceback"]) == ("failed", "RuntimeError: boom",
                                                                        "Traceback ...")
    refused = status["runs"]["breakout/drq/seed3"]
    assert refused["status"] == "failed" and "different config" in refused["error"]
    assert "train.steps" in refused["error"]
    kept = json.loads((out / "breakout" / "drq" / "seed3" / "config.json").read_text())
    assert kept["train"]["steps"] == 999
    assert "2/4 finished, 2 failed, 0 remaining (0 running)" in stream.getvalue()
    (out / "breakout" / "drq" / "seed1").mkdir()  # as if the failed run had begun
    (out / "breakout" / "drq" / "seed1" / "config.json").write_text(
        json.dumps(plan_jobs(spec)[1]["config"]))
    dry = io.StringIO()
    run_sweep(spec, ScriptedBackend(set()), dry_run=True, stream=dry)
    said = dry.getvalue()
    assert "finished breakout/drq/seed0 (score 7.0): would skip it" in said
    assert "would resume breakout/drq/seed1" in said and "would run breakout/drq/seed2" not in said
    assert "would refuse breakout/drq/seed3: run directory" in said and "train.steps" in said
    assert not (out / "breakout" / "drq" / "seed1" / "summary.json").exists()  # nothing ran

    backend = ScriptedBackend(failing=set())
    status = run_sweep(spec, backend, stream=io.StringIO())
    assert backend.ran == ["breakout/drq/seed1"]  # finished runs skipped, the failed one retried
    assert status["runs"]["breakout/drq/seed1"]["status"] == "finished" and status["failed"] == 1
    with pytest.raises(ValueError, match="holds a minatar sweep"):
        run_sweep(make_spec("synthetic", out=out), backend, stream=io.StringIO())
    extended = run_sweep(make_spec("minatar", presets="drq", seeds="4-4", games="breakout", overrides=TINY,
                                   out=out), ScriptedBackend(set()), stream=io.StringIO())
    assert extended["runs"]["breakout/drq/seed4"]["status"] == "finished"
    assert json.loads((out / SWEEP_FILE).read_text())["seeds"] == [0, 1, 2, 3, 4]


def test_a_sweep_leaves_runs_another_process_holds_to_it(tmp_path):
    import os

    from plastic.train.lock import run_lock

    out = tmp_path / "sweep"
    spec = make_spec("minatar", presets="drq", seeds=3, games="breakout", overrides=TINY, out=out)
    held = out / "breakout" / "drq" / "seed1"
    held.mkdir(parents=True)
    dry = io.StringIO()
    with run_lock(held):
        run_sweep(spec, ScriptedBackend(set()), dry_run=True, stream=dry)
        backend, stream = ScriptedBackend(set()), io.StringIO()
        status = run_sweep(spec, backend, stream=stream)
    pid = os.getpid()
    assert f"another process (pid {pid}) runs breakout/drq/seed1: would leave it alone" in dry.getvalue()
    assert backend.ran == ["breakout/drq/seed0", "breakout/drq/seed2"]
    said = stream.getvalue()
    assert f"left alone breakout/drq/seed1: another process (pid {pid}) runs it" in said
    assert "2/3 finished, 0 failed, 1 left to another process, 0 remaining" in said
    assert f"`plastic status {out}` follows the runs other processes hold" in said
    assert "breakout/drq/seed1" not in status["runs"] and status["held"] == 1

    backend = ScriptedBackend(set())  # the holder is gone: the run is this sweep's again
    run_sweep(spec, backend, stream=io.StringIO())
    assert backend.ran == ["breakout/drq/seed1"]


def test_local_sweep_runs_for_real_records_a_failing_worker_and_redoes_nothing(tmp_path, monkeypatch):
    import plastic.experiments.sweep as sweep_module

    plan = sweep_module.plan_jobs

    def plan_with_a_broken_run(spec):  # seed 2 asks for a game MinAtar lacks: its worker fails
        jobs = plan(spec)
        for job in jobs:
            if job["id"].endswith("seed2"):
                job["config"]["game"] = "pong"
        return jobs

    monkeypatch.setattr(sweep_module, "plan_jobs", plan_with_a_broken_run)
    out = tmp_path / "sweep"
    spec = make_spec("minatar", presets="drq", seeds=3, games="breakout", overrides=TINY, out=out)
    stream = io.StringIO()
    status = run_sweep(spec, LocalBackend(workers=3), stream=stream)

    assert (status["finished"], status["failed"], status["total"]) == (2, 1, 3)
    failed = status["runs"]["breakout/drq/seed2"]
    assert failed["status"] == "failed" and "Unknown MinAtar game 'pong'" in failed["error"]
    assert "Traceback" in failed["traceback"]
    for seed in (0, 1):
        summary = json.loads((out / "breakout" / "drq" / f"seed{seed}" / "summary.json").read_text())
        assert summary["steps"] == 150 and summary["seed"] == seed
        assert status["runs"][f"breakout/drq/seed{seed}"]["status"] == "finished"
    assert "2/3 finished, 1 failed, 0 remaining" in stream.getvalue()
    described = json.loads((out / SWEEP_FILE).read_text())
    assert described["benchmark"] == "minatar" and described["seeds"] == [0, 1, 2]
    assert described["overrides"]["train.steps"] == "150"

    monkeypatch.undo()
    before = summary_mtimes(out)
    stream = io.StringIO()
    again = run_sweep(make_spec("minatar", presets="drq", seeds=2, games="breakout", overrides=TINY, out=out),
                      LocalBackend(workers=2), stream=stream)
    assert summary_mtimes(out) == before and len(before) == 2  # nothing redone
    assert "2 already finished, 0 to run" in stream.getvalue() and again["finished"] == 2


def test_ray_sweep_then_rerun_redoes_nothing(tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "ray_sweep"
    args = ["sweep", "minatar", "--presets", "drq", "--seeds", "2", "--games", "breakout", "--out", str(out),
            "--backend", "ray", "--workers", "2", *(f"--set={k}={v}" for k, v in TINY.items())]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "local Ray" in err and "2/2 finished, 0 failed, 0 remaining" in err
    before = summary_mtimes(out)
    assert sorted(before) == ["breakout/drq/seed0/summary.json", "breakout/drq/seed1/summary.json"]
    logs = (out / "breakout" / "drq" / "seed1" / "sweep.log").read_text()
    assert "finished" in logs  # the run's own output went to its log, not the terminal

    assert main(args) == 0  # everything finished: no Ray needed, nothing redone
    assert summary_mtimes(out) == before
    assert "2 already finished, 0 to run" in capsys.readouterr().err
    assert isinstance(make_backend("ray"), RayBackend)


def scripted_cli(monkeypatch) -> None:
    """`plastic sweep` with ScriptedBackend in place of its real backend (no training)."""
    import plastic.experiments.backends as backends

    monkeypatch.setattr(backends, "make_backend", lambda *args, **kwargs: ScriptedBackend(failing=set()))


def sweep_args(out: Path, *extra: str) -> list[str]:
    return ["sweep", "minatar", "--presets", "drq,plastic", "--seeds", "1", "--games", "breakout",
            "--out", str(out), *(f"--set={k}={v}" for k, v in TINY.items() if k != "train.steps"), *extra]


def test_rerunning_a_sweep_with_other_settings_is_refused_and_changes_nothing(tmp_path, monkeypatch, capsys):
    from plastic.cli import main as plastic_main

    scripted_cli(monkeypatch)
    out = tmp_path / "sweep"
    assert plastic_main(sweep_args(out, "--steps", "150")) == 0
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()

    assert plastic_main(sweep_args(out, "--steps", "300")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(out) in err and "train.steps: 150 there, 300 now" in err and "--out" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files  # nothing rewritten

    # The same settings spelt another way, or a logging-only key changed: resumes as before.
    assert plastic_main(sweep_args(out, "--set", "train.steps=150", "--set", "train.log_interval=7")) == 0
    assert "2 already finished" in capsys.readouterr().err
    assert plastic_main(sweep_args(out, "--steps", "150", "--set", "plastic:sam.rho=0.05")) == 2
    assert "sam.rho for plastic: 0.1 there, 0.05 now" in capsys.readouterr().err


def test_runs_made_under_other_defaults_are_compared_as_they_ran(tmp_path):
    # a sweep from before the fidelity profiles: sweep.json records no fidelity, its runs' configs
    # neither, and they load as what they ran, `intent`; today's default is `authors`
    out = tmp_path / "old"
    run = out / "breakout" / "plastic" / "seed0"
    run.mkdir(parents=True)
    saved = build_config("minatar", "breakout", "plastic", overrides={**TINY, "fidelity": "intent"}).to_dict()
    del saved["fidelity"]
    (run / "config.json").write_text(json.dumps(saved))
    (out / SWEEP_FILE).write_text(json.dumps({"benchmark": "minatar", "overrides": TINY,
                                              "preset_overrides": {}, "seeds": [0]}))
    same_command = make_spec("minatar", presets="plastic", seeds=2, games="breakout", overrides=TINY, out=out)
    with pytest.raises(ValueError, match="fidelity: 'intent' there, 'authors' now"):
        check_existing_sweep(same_command)
    as_they_ran = make_spec("minatar", presets="plastic", seeds=2, games="breakout",
                            overrides={**TINY, "fidelity": "intent"}, out=out)
    check_existing_sweep(as_they_ran)  # accepted: the runs there are what it asks for


def test_a_synthetic_sweep_is_compared_with_its_runs_as_they_saved_themselves(tmp_path):
    # a synthetic run saves its config resolved (the task's lr, the profile's knobs, the dataset
    # "auto" became): the sweep's check reads it as the run's own resume check does
    from dataclasses import replace

    from plastic.synthetic import SyntheticConfig

    spec = make_spec("synthetic", presets="sam", seeds=1, games="label", out=tmp_path,
                     overrides={"chunks": "2"})
    (job,) = plan_jobs(spec)
    saved = replace(SyntheticConfig.from_dict(job["config"]).resolved(), dataset="digits").to_dict()
    assert saved != job["config"]  # what the run writes is not what the sweep plans
    Path(job["run_dir"]).mkdir(parents=True)
    (Path(job["run_dir"]) / "config.json").write_text(json.dumps(saved))
    (tmp_path / SWEEP_FILE).write_text(json.dumps({"benchmark": "synthetic", "overrides": {"chunks": "2"},
                                                   "preset_overrides": {}, "seeds": [0]}))
    check_existing_sweep(make_spec("synthetic", presets="sam", seeds=2, games="label", out=tmp_path,
                                   overrides={"chunks": "2"}))  # the same settings: accepted
    with pytest.raises(ValueError, match="rho: 0.1 there, 0.3 now"):
        check_existing_sweep(make_spec("synthetic", presets="sam", seeds=2, games="label", out=tmp_path,
                                       overrides={"chunks": "2", "rho": "0.3"}))


def test_a_setting_that_equals_the_first_tasks_default_still_changes_the_others(tmp_path):
    # walker-run's SAM rho is 0.01, cheetah-run's 0.002: --set sam.rho=0.01 changes cheetah-run only
    spec = make_spec("dmc-medium", presets="plastic", seeds=1, games="walker-run,cheetah-run",
                     out=tmp_path)
    recorded = {"benchmark": "dmc-medium", "overrides": dict(spec.overrides), "preset_overrides": {}}
    spec.overrides["sam.rho"] = "0.01"
    assert _differing_settings(spec, recorded) == ["sam.rho: 0.002 there, 0.01 now"]


def test_a_per_preset_set_reaches_only_that_presets_runs(tmp_path, monkeypatch, capsys):
    from plastic.cli import main as plastic_main

    scripted_cli(monkeypatch)
    out = tmp_path / "sweep"
    assert plastic_main(sweep_args(out, "--steps", "150", "--set", "plastic:sam.rho=0.05",
                                   "--set", "plastic:reset.interval=30")) == 0
    plastic = json.loads((out / "breakout" / "plastic" / "seed0" / "config.json").read_text())
    drq = json.loads((out / "breakout" / "drq" / "seed0" / "config.json").read_text())
    assert (plastic["sam"]["rho"], plastic["reset"]["interval"], plastic["train"]["steps"]) == (0.05, 30, 150)
    assert drq["sam"]["rho"] == build_config("minatar", "breakout", "drq").sam.rho
    assert drq["train"]["steps"] == 150
    described = json.loads((out / SWEEP_FILE).read_text())
    assert described["preset_overrides"] == {"plastic": {"reset.interval": "30", "sam.rho": "0.05"}}
    capsys.readouterr()

    assert plastic_main(sweep_args(tmp_path / "other", "--set", "plastic-dagger:sam.rho=0.05")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'plastic-dagger' is not a preset of this sweep (drq, plastic)" in err
    assert plastic_main(sweep_args(tmp_path / "other", "--set", "plastic:=1")) == 2
    assert "--set expects KEY=VALUE or PRESET:KEY=VALUE" in capsys.readouterr().err
    spec = make_spec("synthetic", presets="vanilla,sam", seeds=1, games="label", out=tmp_path / "syn",
                     overrides={"chunks": "2"}, preset_overrides={"sam": {"rho": "0.3"}})
    rho = {j["config"]["method"]: j["config"]["rho"] for j in plan_jobs(spec)}
    assert rho == {"vanilla": 0.1, "sam": 0.3}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize(("flags", "message"), [
    (["--device", "cuda"], "device 'cuda' asked for, but torch sees no CUDA GPU; use --device cpu"),
    (["--set", "plastic:train.cuda_graph=true"], "train.cuda_graph needs a CUDA device; these runs' is cpu"),
])
def test_a_device_this_machine_lacks_is_refused_before_any_run(tmp_path, capsys, flags, message):
    from plastic.cli import main as plastic_main

    out = tmp_path / "sweep"
    assert plastic_main(["sweep", "minatar", "--games", "breakout", "--seeds", "2", "--steps", "150",
                         "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"plastic: error: {message}" and not out.exists()
