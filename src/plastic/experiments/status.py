"""How a sweep or a run stands, read from its directory while it runs or after: ``plastic status DIR``.

A sweep started in the background (``nohup plastic sweep ...``) says how far it is only in its
log. This reads the files instead: each run of the sweep's plan (``sweep.json``) is finished (its
``summary.json``), running (a process holds its lock, ``plastic.train.lock``), failed (as
``sweep_status.json`` recorded it), interrupted (begun, not finished, nobody running it: running
the sweep again resumes it) or not started. A run directory of ``plastic train`` alone reads the same
way.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plastic.experiments.benchmarks import (
    BENCHMARKS,
    Benchmark,
    get_benchmark,
    last_log_rows,
    summary_cpu_seconds,
    summary_score,
)
from plastic.experiments.sweep import STATUS_FILE, SWEEP_FILE, run_id
from plastic.humanize import duration_text
from plastic.train.lock import is_locked

STATES = ("running", "interrupted", "failed", "finished", "not started")


@dataclass
class RunState:
    run_id: str
    state: str
    preset: str = ""  # in a sweep's plan
    fraction: float | None = None  # of the run's steps (chunks for synthetic), where known
    seconds_left: float | None = None  # a running run's time left at its recent pace (_seconds_left)
    seconds_whole: float | None = None  # and all its steps' time at that pace
    score: float | None = None
    seconds: float | None = None  # a finished run's wall time
    cpu_seconds: float | None = None  # and its CPU time (summary.json's cpu_time; older runs lack it)
    error: str | None = None
    # False: only an earlier command of the sweep asked for it, so re-running its last one skips it
    in_last_command: bool = True


def _seconds_left(run_dir: Path, config: dict[str, Any], windows: int = 3) -> tuple[float, float] | None:
    """(steps to go, and all the run's steps) / (the median pace of the last ``windows`` logged
    windows that learned), for runs that log both in train.csv. The median, because one window can
    hold a pause (a stopped process, a suspended machine) and alone would put hours on the
    estimate. None before the first update: steps that only act run hundreds of times faster than
    the rest."""
    rows = last_log_rows(run_dir / "train.csv", windows)
    try:
        steps = float(config["train"]["steps"])
        if not rows or float(rows[-1].get("updates", 1)) <= 0:
            return None
        done = float(rows[-1]["step"])
        pace = statistics.median(float(row["steps_per_s"]) for row in rows
                                 if float(row.get("updates", 1)) > 0)
    except (KeyError, TypeError, ValueError):
        return None
    return ((steps - done) / pace, steps / pace) if pace > 0 else None


def status_text(directory: Path) -> tuple[str, bool]:
    """What ``plastic status`` prints for a sweep or run directory, and whether all of it is finished."""
    if not directory.is_dir():
        raise ValueError(f"no such directory: {directory}")
    if not (directory / SWEEP_FILE).exists() and (directory / "config.json").exists():
        state = run_state(directory)
        return format_status(directory, None, [state]), state.state == "finished"
    sweep, states = sweep_states(directory)
    return format_status(directory, sweep, states), all(s.state == "finished" for s in states)


def run_state(run_dir: Path) -> RunState:
    """The state of one run directory (``plastic train``, or a synthetic run)."""
    try:
        suite = json.loads((run_dir / "config.json").read_text()).get("suite", "synthetic")
    except (OSError, ValueError):
        suite = None
    bench = next((b for b in BENCHMARKS.values() if b.suite == suite), None)
    return _run_state(bench, run_dir, str(run_dir), {})


def sweep_states(out: Path) -> tuple[dict[str, Any], list[RunState]]:
    """The sweep's description (its ``sweep.json``) and the state of each run of its plan, in the
    sweep's order (seeds outermost)."""
    path = out / SWEEP_FILE
    if not path.exists():
        raise ValueError(f"{out} holds neither a sweep ({SWEEP_FILE}) nor a run (config.json): give a "
                         "`plastic sweep`'s --out directory or a run directory")
    sweep = json.loads(path.read_text())
    recorded = {}
    if (out / STATUS_FILE).exists():
        recorded = json.loads((out / STATUS_FILE).read_text()).get("runs", {})
    bench = get_benchmark(sweep["benchmark"])
    commands = [entry.get("command") or [] for entry in sweep.get("history") or [sweep]]
    planned, last = _planned(commands), _planned(commands[-1:])
    states = []
    for seed in sweep["seeds"]:
        for game in sweep["games"]:
            for preset in sweep["presets"]:
                name = run_id(game, preset, seed)
                # a run directory there counts even if no command asked for it (runs copied in)
                if planned is None or (game, preset, seed) in planned or (out / name).is_dir():
                    state = _run_state(bench, out / name, name, recorded.get(name, {}))
                    states.append(dataclasses.replace(
                        state, preset=preset, in_last_command=last is None or (game, preset, seed) in last))
    return sweep, states


def _planned(commands: list[list[str]]) -> set[tuple[str, str, int]] | None:
    """The runs these ``plastic sweep`` commands (a sweep's recorded ones) asked for: a sweep
    extended by a command naming other games or seeds (``--games pong --seeds 1-1``) plans those,
    not every game with every seed of sweep.json's merged lists. None (every combination) where a
    command is not recorded or does not parse."""
    from plastic.experiments.cli import planned_by_command

    planned = set()
    for command in commands:
        asked = planned_by_command(command)
        if asked is None:
            return None
        games, presets, seeds = asked
        planned.update((g, p, s) for g in games for p in presets for s in seeds)
    return planned


def _run_state(bench: Benchmark | None, run_dir: Path, run_id: str, recorded: dict[str, Any]) -> RunState:
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, ValueError):
            summary = {}
        return RunState(run_id, "finished", fraction=1.0, score=summary_score(summary),
                        seconds=summary.get("wall_seconds", summary.get("wall_time_s")),
                        cpu_seconds=summary_cpu_seconds(summary))
    if not (run_dir / "config.json").exists():
        if recorded.get("status") == "failed":  # refused before it began (e.g. another config there)
            return RunState(run_id, "failed", error=recorded.get("error"))
        return RunState(run_id, "not started")
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    fraction = bench.progress({"run_dir": str(run_dir), "config": config}) if config and bench else None
    if is_locked(run_dir):
        left, whole = _seconds_left(run_dir, config) or (None, None)
        return RunState(run_id, "running", fraction=fraction, seconds_left=left, seconds_whole=whole)
    if recorded.get("status") == "failed":
        return RunState(run_id, "failed", fraction=fraction, error=recorded.get("error"))
    return RunState(run_id, "interrupted", fraction=fraction)


def format_status(out: Path, sweep: dict[str, Any] | None, states: list[RunState]) -> str:
    """A sweep's counts and a line per run begun (``sweep`` None: one run directory, its line)."""
    counts = {state: sum(s.state == state for s in states) for state in STATES}
    lines = [] if sweep is None else [f"{out} ({sweep['benchmark']}, {len(states)} runs): "
                                      + ", ".join(f"{counts[state]} {state}" for state in STATES)]
    width = max((len(s.run_id) for s in states), default=0)
    for s in states:
        if s.state == "not started":
            continue
        text = f"  {s.state:<11}  {s.run_id:<{width}}"
        if s.state == "finished":
            text += f"  score {s.score:.4g}" if s.score is not None else "  score ?"
            if s.seconds is not None:
                cpu = f"; {duration_text(s.cpu_seconds)} CPU" if s.cpu_seconds is not None else ""
                text += f"  ({duration_text(s.seconds)}{cpu})"
        else:
            text += f"  {100 * s.fraction:3.0f}%" if s.fraction is not None else ""
            text += f"  ~{duration_text(s.seconds_left)} left" if s.seconds_left is not None else ""
            text += f"  {s.error}" if s.error else ""
            text += "  (an earlier command's run)" if not s.in_last_command else ""
        lines.append(text)
    for waiting, label in (([s.run_id for s in states if s.state == "not started" and s.in_last_command],
                            "not started"),
                           ([s.run_id for s in states if s.state == "not started" and not s.in_last_command],
                            "not started, asked for by an earlier command only (the last one skips them)")):
        if waiting:
            shown = ", ".join(waiting[:8]) + (f", +{len(waiting) - 8} more" if len(waiting) > 8 else "")
            lines.append(f"  {label}: {shown}")
    if sweep is None:
        if counts["interrupted"]:
            lines.append("run the command that started it again to resume it from its last checkpoint")
        return "\n".join(line.strip() for line in lines)
    if any(s.state in ("interrupted", "failed") and s.in_last_command for s in states):
        lines.append("  run the sweep's command again to resume the interrupted runs and retry the failed "
                     f"ones (its last command is in {out / SWEEP_FILE})")
    left, unknown = run_time_left(states)
    others = sum(s.state not in ("finished", "running") and not s.in_last_command for s in states)
    if left or unknown:
        text = f"  ≈ {duration_text(left)} of run time left" if left else "  run time left unknown"
        if left:
            text += " (one run at a time; runs not running at the pace of a running run of their " \
                    "preset, else at the mean of this sweep's finished runs of it)"
        if left and unknown:
            text += f", + {unknown} run(s) of no known length yet"
        running = [s for s in states if s.state == "running"]
        if left and len(running) > 1:  # several workers or processes: the wall time is shorter
            wall = max(left / len(running), *(s.seconds_left or 0.0 for s in running))
            text += f"; ≈ {duration_text(wall)} with {len(running)} runs at a time, as now"
        if others:
            text += f"; not counting {others} run(s) not finished that only an earlier command asked for"
        lines.append(text)
    return "\n".join(lines)


def run_time_left(states: list[RunState]) -> tuple[float, int]:
    """(seconds of run time the sweep's unfinished runs still need, one after another; how many
    runs it could not estimate: a preset with no finished run and no running one past its first
    update, or a running run before its first update). A running run counts its own time left;
    an interrupted or not started one (a failed one is retried too), for the part of it not yet
    done, the length that the running runs of its preset would have at their present pace (the
    machine and threads as they are now), or where none runs, the mean wall time of the finished
    runs of its preset. Runs that the sweep's last command does not ask for are left out: running
    that command again would not run them."""
    finished: dict[str, list[float]] = {}
    paced: dict[str, list[float]] = {}
    for s in states:
        if s.state == "finished" and s.seconds:
            finished.setdefault(s.preset, []).append(s.seconds)
        elif s.state == "running" and s.seconds_whole:
            paced.setdefault(s.preset, []).append(s.seconds_whole)
    lengths = {**finished, **paced}  # a preset's present pace, where it has one
    left, unknown = 0.0, 0
    for s in states:
        if s.state == "finished" or (not s.in_last_command and s.state != "running"):
            continue
        if s.state == "running" and s.seconds_left is not None:
            left += s.seconds_left
        elif s.state != "running" and s.preset in lengths:
            mean = sum(lengths[s.preset]) / len(lengths[s.preset])
            left += mean * (1.0 - (s.fraction or 0.0))
        else:
            unknown += 1
    return left, unknown
