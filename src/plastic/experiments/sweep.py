"""Sweeps: every game × preset × seed of a benchmark, each run in its own directory.

Layout of a sweep directory::

    OUT/sweep.json                 what the sweep is (benchmark, games, presets, seeds, settings)
    OUT/sweep_status.json          per run: running / finished / failed (error, traceback tail) /
                                   interrupted
    OUT/GAME/PRESET/seedN/         one run directory each (see plastic.train.loop), + sweep.log

Running the same sweep again skips finished runs, resumes interrupted ones from their
checkpoints and retries failed ones. A run that fails is recorded and does not stop the others.
Several sweep processes may share a directory (more workers started later, or on another machine
over a shared filesystem): each leaves alone a run another one holds (its lock, see
``plastic.train.lock``) and changes only its own runs' entries in ``sweep_status.json``.
Running it with other settings (``--steps``, ``--set``, ...) is refused before anything is written:
a sweep directory holds one set of settings; only logging keys may change.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from plastic.experiments.backends import LocalBackend, RayBackend
from plastic.experiments.benchmarks import (
    Benchmark,
    get_benchmark,
    summary_score,
)
from plastic.humanize import duration_text

SWEEP_FILE = "sweep.json"
STATUS_FILE = "sweep_status.json"


def parse_seeds(text: str | int | Sequence[int]) -> list[int]:
    """``5`` -> seeds 0..4; ``"3-5"`` -> 3, 4, 5; ``"0,7"`` -> 0, 7."""
    if isinstance(text, int):
        text = str(text)
    if not isinstance(text, str):
        seeds = [int(s) for s in text]
    else:
        try:
            if "," in text:
                seeds = [int(s) for s in text.split(",") if s.strip()]
            elif "-" in text.strip()[1:]:
                first, last = text.split("-", 1)
                seeds = list(range(int(first), int(last) + 1))
            else:
                seeds = list(range(int(text)))
        except ValueError:
            raise ValueError(f"--seeds expects a count (5: seeds 0-4), a range (3-5) or a list (0,7); "
                             f"got {text!r}") from None
    if isinstance(text, str) and text.strip() == "0":
        raise ValueError("--seeds 0 is a count of no seeds; for seed 0 alone write --seeds 0-0 "
                         "(a range), or a list such as 0,3")
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must give one or more distinct seeds >= 0, got {text!r}")
    return seeds


def parse_sweep_assignments(items: Sequence[str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """``--set`` items of a sweep: ``KEY=VALUE`` for every run, ``PRESET:KEY=VALUE`` for one
    preset's runs. Returns (settings for all, {preset: settings}). Keys and presets hold no ':'
    and values may (``device=cuda:1``), so a ':' before the '=' separates the preset."""
    shared: dict[str, str] = {}
    per_preset: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        preset, colon, key = target.rpartition(":")
        if not sep or not key.strip() or (colon and not preset.strip()):
            raise ValueError(f"--set expects KEY=VALUE or PRESET:KEY=VALUE (e.g. plastic:sam.rho=0.05), "
                             f"got {item!r}")
        (per_preset.setdefault(preset.strip(), {}) if colon else shared)[key.strip()] = value
    return shared, per_preset


def split_names(values: str | Sequence[str] | None) -> list[str]:
    """``"a,b"`` or ``["a,b", "c"]`` -> ``["a", "b", "c"]``."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [name.strip() for item in items for name in item.split(",") if name.strip()]


@dataclass
class SweepSpec:
    benchmark: str
    presets: list[str]
    seeds: list[int]
    games: list[str]
    overrides: dict[str, Any] = field(default_factory=dict)
    out: Path = Path("sweeps")
    preset_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # win over ``overrides``

    def settings(self, preset: str) -> dict[str, Any]:
        """The overrides of ``preset``'s runs."""
        return {**self.overrides, **self.preset_overrides.get(preset, {})}


def run_id(game: str, preset: str, seed: int) -> str:
    """A run's name in its sweep, and its directory there: GAME/PRESET/seedN."""
    return f"{game}/{preset}/seed{seed}"


def make_spec(benchmark: str, *, presets: str | Sequence[str] | None = None, seeds: str | int = 5,
              games: str | Sequence[str] | None = None, replay_ratio: float | None = None,
              steps: int | None = None, device: str | None = None, overrides: dict[str, Any] | None = None,
              out: str | Path | None = None,
              preset_overrides: dict[str, dict[str, Any]] | None = None) -> SweepSpec:
    """Checks and completes a sweep's settings (defaults: the benchmark's games and presets);
    ``preset_overrides`` ({preset: {key: value}}) apply to one preset's runs only."""
    bench = get_benchmark(benchmark)
    preset_list = split_names(presets) or list(bench.default_presets)
    bench.check_presets(preset_list)
    game_list = [bench.canonical_game(g) for g in split_names(games)] or list(bench.games)
    for name, items in (("presets", preset_list), ("games", game_list)):
        if len(set(items)) != len(items):
            raise ValueError(f"--{name} lists a name twice: {', '.join(items)}")
    settings = bench.settings(replay_ratio=replay_ratio, steps=steps, device=device)
    settings.update(overrides or {})
    for scope, values in (("", settings), *((f"{p}:", v) for p, v in (preset_overrides or {}).items())):
        for key in values:
            if key in bench.run_name_keys:
                raise ValueError(f"--set {scope}{key}=...: {key} names a sweep's runs and their "
                                 f"directories; use {bench.run_name_keys[key]} instead")
    for preset in preset_overrides or {}:
        if preset not in preset_list:
            key = next(iter(preset_overrides[preset]), "KEY")
            raise ValueError(f"--set {preset}:{key}=...: {preset!r} is not a preset of this sweep "
                             f"({', '.join(preset_list)}); name one of them, or drop '{preset}:' to set "
                             "the key for every run")
    return SweepSpec(benchmark=bench.name, presets=preset_list, seeds=parse_seeds(seeds), games=game_list,
                     overrides=settings, out=Path(out) if out is not None else Path("sweeps") / bench.name,
                     preset_overrides={p: dict(v) for p, v in (preset_overrides or {}).items() if v})


def plan_jobs(spec: SweepSpec) -> list[dict[str, Any]]:
    """One job per run, seeds outermost so that with few workers every preset and game gets its
    first seed early. Every config is built here: a bad name or value fails before anything runs."""
    bench = get_benchmark(spec.benchmark)
    out = spec.out.expanduser().resolve()
    jobs = []
    for seed in spec.seeds:
        for game in spec.games:
            for preset in spec.presets:
                job_id = run_id(game, preset, seed)
                jobs.append({
                    "id": job_id, "benchmark": bench.name, "run_dir": str(out / job_id),
                    "config": bench.job_config(game, preset, seed, spec.settings(preset)),
                })
    _refuse_one_agent_twice(spec.presets, jobs[:len(spec.presets)])
    return jobs


def _refuse_one_agent_twice(presets: Sequence[str], jobs: Sequence[dict[str, Any]]) -> None:
    """Two presets that make the same agent with the same settings (``plastic`` and
    ``drq+ln+crelu+sam+reset``, or ``drq+ln+sam`` and ``drq+sam+ln``) would train it twice under
    two labels; a per-preset ``--set`` that tells them apart makes them two agents. ``jobs``: one
    game and seed's, a job per preset."""
    first_named: dict[str, str] = {}
    for preset, job in zip(presets, jobs):
        agent = json.dumps({k: v for k, v in job["config"].items() if k != "preset"}, sort_keys=True,
                           default=str)
        if agent in first_named:
            raise ValueError(f"--presets {first_named[agent]!r} and {preset!r} make the same agent with "
                             "the same settings: the sweep would train it twice under two labels; keep one")
        first_named[agent] = preset


def check_devices_here(jobs: Sequence[dict[str, Any]]) -> None:
    """For runs on this machine: refuse, before any starts, a device it does not have (and
    ``train.cuda_graph`` without a CUDA one), rather than every run failing alike."""
    from plastic.agents.cuda_graph import check_graph_device
    from plastic.runtime import resolve_device

    for config in {json.dumps(job["config"], sort_keys=True): job["config"] for job in jobs}.values():
        device = resolve_device(str(config.get("device", "auto")))
        if config.get("train", {}).get("cuda_graph"):
            check_graph_device(device, whose="these runs'")


def _atomic_json(path: Path, data: Any) -> None:
    from plastic.train.checkpoint import write_json

    write_json(path, data)


def _describe(spec: SweepSpec, backend: str, command: list[str] | None) -> dict[str, Any]:
    bench = get_benchmark(spec.benchmark)
    return {
        "benchmark": bench.name, "suite": bench.suite, "games": spec.games, "presets": spec.presets,
        "seeds": spec.seeds, "overrides": _sorted(spec.overrides),
        "preset_overrides": {p: _sorted(v) for p, v in sorted(spec.preset_overrides.items())},
        "backend": backend, "runs": len(spec.games) * len(spec.presets) * len(spec.seeds),
        "layout": "GAME/PRESET/seedN", "command": command,
    }


def _sorted(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: settings[k] for k in sorted(settings)}


def check_existing_sweep(spec: SweepSpec) -> None:
    """Refuses to run ``spec`` into a directory that holds another benchmark's sweep or one with
    other settings; writes nothing. Games, presets and seeds may be added, and keys that only
    change logging (or where a run executes) may differ."""
    path = spec.out / SWEEP_FILE
    if not path.exists():
        return
    from plastic.train.checkpoint import read_json

    old = read_json(path)
    if old.get("benchmark") != spec.benchmark:
        raise ValueError(f"{spec.out} holds a {old.get('benchmark')} sweep; use another --out "
                         f"for {spec.benchmark}")
    differing = _differing_settings(spec, old)
    if differing:
        shown = "; ".join(differing[:6]) + ("; ..." if len(differing) > 6 else "")
        raise ValueError(f"{spec.out} holds a sweep with other settings ({shown}); nothing was changed: "
                         "use another --out for the new settings, or this sweep's own settings "
                         f"(see {path}) to resume or extend it")


def _differing_settings(spec: SweepSpec, old: dict[str, Any]) -> list[str]:
    """'KEY: OLD there, NEW now' for each config key of the runs of ``spec``'s presets whose value
    differs from what the directory's runs hold: the config.json of a run already there, else the
    config the settings recorded in ``old`` (the directory's sweep.json) give today. Values compare
    as built configs, so ``--steps 150`` equals ``--set train.steps=150``, and a default changed
    since the runs were made (an older plastic) shows as a difference too."""
    bench = get_benchmark(spec.benchmark)
    old_shared, old_per_preset = old.get("overrides", {}), old.get("preset_overrides", {})
    found: dict[str, dict[tuple[str, str], list[str]]] = {}
    for preset in spec.presets:
        before = {**old_shared, **old_per_preset.get(preset, {})}
        after = spec.settings(preset)
        differences: dict[str, tuple[str, str]] = {}
        for game in spec.games:  # per-task defaults (DMC) can hide a change on one game only
            ran = _configs_there(spec.out, game, preset, old.get("seeds", []))
            for key, values in _config_differences(bench, game, preset, before, after, ran).items():
                differences.setdefault(key, values)
        for key, values in differences.items():
            found.setdefault(key, {}).setdefault(values, []).append(preset)
    lines = []
    for key, by_values in found.items():
        for (was, now), presets in by_values.items():
            scope = "" if len(by_values) == 1 and len(presets) == len(spec.presets) else \
                f" for {', '.join(presets)}"
            lines.append(f"{key}{scope}: {was} there, {now} now")
    return lines


def _configs_there(out: Path, game: str, preset: str, seeds: Sequence[int]) -> Iterator[dict[str, Any]]:
    """The saved configs (config.json) of the runs of ``game`` and ``preset`` already in the sweep
    directory, read one at a time (the first that matches ends the search)."""
    from plastic.train.checkpoint import read_json

    for seed in seeds:
        try:
            yield read_json(out / run_id(game, preset, seed) / "config.json")
        except (OSError, ValueError):  # none there yet, or unreadable: the run's own check says so
            continue


def _config_differences(bench: Benchmark, game: str, preset: str, before: dict[str, Any],
                        after: dict[str, Any], ran: Iterable[dict[str, Any]] = ()
                        ) -> dict[str, tuple[str, str]]:
    """The keys a run of ``game`` and ``preset`` built with ``after`` changes: against the runs
    there, by their own resume rule (none when it equals one of them), else against a run built
    with ``before``."""
    from plastic.configs.schema import flatten

    ignored = {*bench.resume_ignored_keys, "seed"}

    def changed(was: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[str, str]]:
        return {key: (repr(was.get(key)), repr(now.get(key))) for key in sorted(set(was) | set(now))
                if key not in ignored and str(was.get(key)) != str(now.get(key))}

    wanted: dict[str, Any] | None = None
    first: dict[str, tuple[str, str]] | None = None
    for saved in ran:
        wanted = wanted or bench.job_config(game, preset, 0, after)
        try:
            found = {key: (repr(was), repr(now)) for key, (was, now)
                     in bench.differences_from_run(saved, wanted).items() if key not in ignored}
        except (TypeError, ValueError):  # a config this version cannot read: as written
            found = changed(flatten(saved), flatten(wanted))
        if not found:
            return {}
        first = found if first is None else first
    if first is not None:
        return first
    if before == after:
        return {}
    now = flatten(wanted or bench.job_config(game, preset, 0, after))
    try:
        was = flatten(bench.job_config(game, preset, 0, before))
    except ValueError:  # recorded settings this version no longer accepts: compare them as written
        return changed(before, after)
    return changed(was, now)


def write_sweep_file(spec: SweepSpec, backend: str, command: list[str] | None = None) -> dict[str, Any]:
    """Writes OUT/sweep.json. A directory keeps one benchmark and one set of settings
    (``check_existing_sweep``); adding games, presets or seeds to an existing sweep is fine and
    the description grows to cover both. Under a lock: two sweep processes started together would
    otherwise each drop the other's command from the history."""
    from plastic.train.lock import exclusive

    path = spec.out / SWEEP_FILE
    description = _describe(spec, backend, command)
    with exclusive(path.with_name(f".{SWEEP_FILE}.lock")):
        history: list[dict[str, Any]] = []
        if path.exists():
            old = json.loads(path.read_text())
            history = old.get("history", [])
            for key in ("games", "presets", "seeds"):
                description[key] = list(dict.fromkeys([*old.get(key, []), *description[key]]))
            merged = {**old.get("preset_overrides", {}), **description["preset_overrides"]}
            description["preset_overrides"] = {p: merged[p] for p in sorted(merged)}
        description["history"] = [*history, {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": command,
                                             "overrides": description["overrides"],
                                             "preset_overrides": description["preset_overrides"],
                                             "backend": backend}]
        _atomic_json(path, description)
    return description


class Progress:
    """Keeps OUT/sweep_status.json current and tells the terminal how the sweep is going: a line
    per finished or failed run, and every ``heartbeat`` seconds how far the running ones are."""

    def __init__(self, out: Path, total: int, stream: TextIO | None = None, heartbeat: float = 300.0) -> None:
        self.path = out / STATUS_FILE
        self.runs = self._recorded()
        self.changed: set[str] = set()  # entries changed here since the last save (see _save)
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.counts = {"finished": 0, "failed": 0, "running": 0, "held": 0}
        self.started = self.last_said = time.perf_counter()
        self.finished_now = 0
        self.heartbeat = heartbeat
        self.running: dict[str, dict[str, Any]] = {}
        self.first_seen: dict[str, tuple[float, float]] = {}  # run id -> (time, fraction) first read

    def _recorded(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.path.read_text()).get("runs", {}) if self.path.exists() else {}

    def _save(self) -> None:
        """Writes the entries this process changed since its last save over what the file holds
        now, under a lock: another sweep process over the same directory writes its own, and an
        entry it wrote later (a run this one failed and it then finished) is never overwritten
        by an older one from here. The file holds runs only: the counts are each process's own."""
        from plastic.train.lock import exclusive

        with exclusive(self.path.with_name(f".{STATUS_FILE}.lock")):
            self.runs = {**self._recorded(), **{run: self.runs[run] for run in self.changed}}
            _atomic_json(self.path, {"updated": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": self.runs})
            self.changed.clear()

    def status(self) -> dict[str, Any]:
        """Every run's entry as the file holds it, with this process's counts and its sweep's size."""
        return {"runs": self.runs, **self.counts, "total": self.total}

    def say(self, text: str) -> None:
        print(f"[sweep] {text}", file=self.stream, flush=True)
        self.last_said = time.perf_counter()

    def tick(self) -> None:
        if time.perf_counter() - self.last_said < self.heartbeat:
            return
        parts, now = [], time.perf_counter()
        for job in list(self.running.values())[:6]:
            fraction = get_benchmark(job["benchmark"]).progress(job)
            parts.append(job["id"] + self.how_far(job["id"], fraction, now))
        more = f", +{len(self.running) - 6} more" if len(self.running) > 6 else ""
        self.say(f"{self.line()}: {', '.join(parts)}{more}")

    def how_far(self, job_id: str, fraction: float | None, now: float) -> str:
        """' 35%', and ' 35% (~2.1 h left)' once the run has moved since this sweep first read it
        (its pace here, so a resumed run's earlier progress does not count as this session's)."""
        if fraction is None:
            return ""
        text = f" {100 * fraction:.0f}%"
        since, first = self.first_seen.setdefault(job_id, (now, fraction))
        if fraction > first and now > since:
            text += f" (~{duration_text((1 - fraction) * (now - since) / (fraction - first))} left)"
        return text

    def line(self) -> str:
        done, failed, running = self.counts["finished"], self.counts["failed"], self.counts["running"]
        held = self.counts["held"]
        remaining = self.total - done - failed - held
        text = f"{done}/{self.total} finished, {failed} failed"
        text += f", {held} left to another process" if held else ""
        text += f", {remaining} remaining ({running} running)"
        if self.finished_now and remaining:
            per_run = (time.perf_counter() - self.started) / self.finished_now  # wall time per completion
            text += f", ~{duration_text(per_run * remaining)} left"
        return text

    def skipped(self, job: dict[str, Any], summary: dict[str, Any]) -> None:
        self.runs[job["id"]] = {"status": "finished", "score": summary_score(summary),
                                "seconds": summary.get("wall_seconds", summary.get("wall_time_s"))}
        self.changed.add(job["id"])
        self.counts["finished"] += 1

    def refused(self, job: dict[str, Any], error: Exception) -> None:
        self.runs[job["id"]] = {"status": "failed", "error": f"{type(error).__name__}: {error}",
                                "traceback": "", "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.changed.add(job["id"])
        self.counts["failed"] += 1
        self.say(f"FAILED {job['id']}: {error}")

    def held(self, job_id: str, holder: str) -> None:
        """Another process runs ``job_id``: its entry is that process's to write."""
        self.changed.discard(job_id)
        self.counts["held"] += 1
        self.say(f"left alone {job_id}: {holder} runs it")

    def start(self, job: dict[str, Any]) -> None:
        self.running[job["id"]] = job
        self.counts["running"] += 1
        self.runs[job["id"]] = {"status": "running", "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.changed.add(job["id"])
        self._save()

    def result(self, result: dict[str, Any]) -> None:
        if self.running.pop(result["id"], None) is not None:
            self.counts["running"] -= 1
        if result["status"] == "held":  # another process took it between the plan and the start
            self.held(result["id"], result.get("holder", "another process"))
            self._save()
            return
        entry: dict[str, Any] = {"status": result["status"], "seconds": result.get("seconds"),
                                 "host": result.get("host"), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if result["status"] == "finished":
            self.counts["finished"] += 1
            entry["score"] = summary_score(result["summary"])
            what = f"done {result['id']}: score {entry['score']:.4g}"
            if result.get("elsewhere"):  # not this sweep's work: its time says nothing of the rest's
                entry["seconds"] = result["summary"].get("wall_seconds", result["summary"].get("wall_time_s"))
                result = {**result, "seconds": None}
                what = f"{result['id']} was finished meanwhile by another process: score {entry['score']:.4g}"
            else:
                self.finished_now += 1
        else:
            self.counts["failed"] += 1
            entry.update(error=result["error"], traceback=result.get("traceback", ""))
            what = f"FAILED {result['id']}: {result['error']}"
        if result.get("seconds") is not None:
            what += f" ({duration_text(result['seconds'])})"
        self.runs[result["id"]] = entry
        self.changed.add(result["id"])
        self._save()
        self.say(f"{what} | {self.line()}")

    def interrupted(self) -> None:
        for run in self.running:
            self.runs[run] = {**self.runs.get(run, {}), "status": "interrupted"}
            self.changed.add(run)
        self.counts["running"] = 0
        self._save()


def _dry_run_line(job: dict[str, Any]) -> str:
    """What a sweep would do with ``job``: skip it (finished), resume it, run it, or refuse it."""
    from plastic.train.lock import holder, is_locked

    try:
        summary = get_benchmark(job["benchmark"]).finished_summary(job)
    except ValueError as error:
        return f"would refuse {job['id']}: {error}"
    if summary is not None:
        return f"finished {job['id']} (score {summary.get('score')}): would skip it"
    if is_locked(Path(job["run_dir"])):
        return f"{holder(Path(job['run_dir']))} runs {job['id']}: would leave it alone"
    started = (Path(job["run_dir"]) / "config.json").exists()
    return f"would {'resume' if started else 'run'} {job['id']} -> {job['run_dir']}"


def run_sweep(spec: SweepSpec, backend: LocalBackend | RayBackend, *, command: list[str] | None = None,
              dry_run: bool = False, stream: TextIO | None = None,
              heartbeat: float = 300.0) -> dict[str, Any]:
    """Runs every run of ``spec`` not yet finished; returns this process's counts (finished,
    failed, running, held: left to another process; total) and every run's entry as
    ``sweep_status.json`` holds it."""
    from plastic.train.lock import holder, is_locked

    spec.out = spec.out.expanduser().resolve()
    jobs = plan_jobs(spec)
    check_existing_sweep(spec)
    backend_name = "ray" if isinstance(backend, RayBackend) else "local"
    progress = Progress(spec.out, len(jobs), stream, heartbeat)
    if dry_run:
        for job in jobs:
            progress.say(_dry_run_line(job))
        return {"total": len(jobs), "runs": {}}
    spec.out.mkdir(parents=True, exist_ok=True)
    write_sweep_file(spec, backend_name, command)
    todo = []
    for job in jobs:
        try:
            summary = get_benchmark(job["benchmark"]).finished_summary(job)
        except ValueError as error:  # the directory holds a different run: never overwrite it
            progress.refused(job, error)
            continue
        if summary is not None:
            progress.skipped(job, summary)
        elif is_locked(Path(job["run_dir"])):
            progress.held(job["id"], holder(Path(job["run_dir"])))
        else:
            todo.append(job)
    progress._save()
    bench = get_benchmark(spec.benchmark)
    progress.say(f"{bench.name}: {len(jobs)} runs ({len(spec.games)} {bench.unit}(s) × {len(spec.presets)} "
                 f"preset(s) × {len(spec.seeds)} seed(s)) in {spec.out}; "
                 f"{progress.counts['finished']} already finished, {len(todo)} to run on "
                 f"{backend.describe()}")
    try:
        if todo:
            backend.run(todo, progress.start, progress.result, progress.tick)
    except KeyboardInterrupt:
        progress.interrupted()
        progress.say(f"interrupted: {progress.line()}; run the same command again to resume")
        raise
    if progress.counts["held"]:
        progress.say(f"done here: {progress.line()}; `plastic status {spec.out}` follows the runs "
                     "other processes hold")
    else:
        progress.say(f"all done: {progress.line()}. Report: plastic report {spec.out}")
    return progress.status()
