"""The benchmarks a sweep can run: which games (or tasks) and presets (or methods) they have, how a
run's configuration is built, and how one run is executed in a worker.

A *job* is a plain, picklable dict (it crosses process and machine boundaries)::

    {"id": "breakout/drq/seed0", "benchmark": "minatar", "run_dir": "/abs/path",
     "config": {...}}                 # Config.to_dict() or SyntheticConfig.to_dict()
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plastic.suites import get_suite


class Benchmark(ABC):
    """What a sweep needs of a benchmark; ``plastic.experiments.sweep`` only calls these."""

    name: str
    suite: str  # the config suite ("atari", "minatar", "dmc") or "synthetic"
    default_presets: tuple[str, ...]
    description: str
    unit = "game"  # what a run's ``--games`` entry is called in messages
    resume_ignored_keys: frozenset[str] = frozenset()  # may differ when a sweep is run again
    # Config keys that name a run, and the sweep's way of setting each (never --set).
    run_name_keys: dict[str, str] = {"suite": "the benchmark argument", "game": "--games",
                                     "preset": "--presets", "seed": "--seeds"}

    @property
    @abstractmethod
    def games(self) -> tuple[str, ...]:
        """The default games (or tasks)."""

    def canonical_game(self, game: str) -> str:
        """The game's name as runs are keyed; an unknown one raises ``ValueError``."""
        if game not in self.games:
            raise ValueError(f"unknown {self.name} {self.unit} {game!r}; valid: {', '.join(self.games)}")
        return game

    @abstractmethod
    def check_presets(self, presets: Sequence[str]) -> None: ...

    @abstractmethod
    def settings(self, *, replay_ratio: float | None, steps: int | None,
                 device: str | None) -> dict[str, Any]:
        """The config keys the sweep's own flags set (an inapplicable flag raises)."""

    @abstractmethod
    def job_config(self, game: str, preset: str, seed: int,
                   overrides: dict[str, Any]) -> dict[str, Any]:
        """The full configuration of one run as a dict; bad names and values raise ``ValueError``."""

    @abstractmethod
    def differences_from_run(self, saved: dict[str, Any],
                             config: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """``{key: (the run's value, config's value)}`` where a run directory's config.json
        differs from the job config ``config``, by the rule the run itself applies when asked to
        resume (keys newer than the run take the meaning they had; keys that do not change a
        result left out)."""

    @abstractmethod
    def finished_summary(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """The summary of a finished run, None if it still has to run (or resume); raises
        ``ValueError`` when the run directory holds a run with a different configuration."""

    @abstractmethod
    def run(self, job: dict[str, Any], threads: int = 0) -> dict[str, Any]:
        """Runs (or resumes, or just reads back) one run; returns its summary. ``threads``: the
        worker's torch threads, used by a run whose config leaves them to the worker."""

    def progress(self, job: dict[str, Any]) -> float | None:
        """How far a running run is (0-1), from the last complete row of its log (a row being
        written is not read); None if unknown yet."""
        path, offset, total = self._progress_log(job)
        row = last_log_row(path)
        try:
            return min(1.0, (float(next(iter(row.values()))) + offset) / total) if row else None
        except (ValueError, ZeroDivisionError):
            return None

    @abstractmethod
    def _progress_log(self, job: dict[str, Any]) -> tuple[Path, int, float]:
        """(the log whose first column counts progress, its offset, the count at the end)."""


def last_log_rows(path: Path, count: int, tail_bytes: int = 4096) -> list[dict[str, str]]:
    """Up to ``count`` last complete rows of a CSV log as {column: text}, oldest first, read from the
    file's end (a row still being written is skipped); [] when there is none or it cannot be read."""
    try:
        with path.open("rb") as handle:
            header = handle.readline().decode(errors="replace").strip()
            start = max(0, path.stat().st_size - tail_bytes)
            handle.seek(start)
            tail = handle.read().decode(errors="replace")
    except OSError:
        return []
    complete = tail.splitlines() if tail.endswith("\n") else tail.splitlines()[:-1]
    if start > 0:
        complete = complete[1:]  # it starts inside a row, which may still split into the right count
    names = header.split(",")
    rows = [line.split(",") for line in complete if line.strip() and line.strip() != header]
    whole = [dict(zip(names, values)) for values in rows if len(values) == len(names)]
    return whole[-count:]


def last_log_row(path: Path, tail_bytes: int = 4096) -> dict[str, str] | None:
    """The last complete row of a CSV log (``last_log_rows``), or None."""
    rows = last_log_rows(path, 1, tail_bytes)
    return rows[-1] if rows else None


@dataclass(frozen=True)
class RLBenchmark(Benchmark):
    """A benchmark of a training suite (``plastic.suites``): runs of ``plastic.train``."""

    name: str
    suite: str
    default_presets: tuple[str, ...]
    description: str
    # Checks a game name and returns the canonical one; None: the suite's own check (Suite.check_game).
    canonical: Callable[[str, tuple[str, ...]], str] | None = None

    @property
    def resume_ignored_keys(self) -> frozenset[str]:  # type: ignore[override]
        from plastic.configs.schema import LOGGING_KEYS

        return LOGGING_KEYS

    @property
    def games(self) -> tuple[str, ...]:
        return get_suite(self.suite).games()

    def canonical_game(self, game: str) -> str:
        return self.canonical(game, self.games) if self.canonical else get_suite(self.suite).check_game(game)

    def check_presets(self, presets: Sequence[str]) -> None:
        from plastic.configs import resolve_preset

        for preset in presets:
            resolve_preset(preset)

    def settings(self, *, replay_ratio: float | None, steps: int | None,
                 device: str | None) -> dict[str, Any]:
        flags = (("train.replay_ratio", replay_ratio), ("train.steps", steps), ("device", device))
        return {key: value for key, value in flags if value is not None}

    def job_config(self, game: str, preset: str, seed: int,
                   overrides: dict[str, Any]) -> dict[str, Any]:
        from plastic.configs import build_config

        return build_config(self.suite, game, preset, seed=seed, overrides=overrides).to_dict()

    def differences_from_run(self, saved: dict[str, Any],
                             config: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        from plastic.configs import Config
        from plastic.configs.schema import saved_config_differences

        return saved_config_differences(saved, Config.from_dict(config))

    def finished_summary(self, job: dict[str, Any]) -> dict[str, Any] | None:
        from plastic.configs import Config
        from plastic.train.checkpoint import read_json
        from plastic.train.loop import check_run_dir

        run_dir = Path(job["run_dir"])
        if check_run_dir(run_dir, Config.from_dict(job["config"])) != "finished":
            return None
        return read_json(run_dir / "summary.json")

    def run(self, job: dict[str, Any], threads: int = 0) -> dict[str, Any]:
        from plastic.configs import Config
        from plastic.train.loop import train

        config = Config.from_dict(job["config"])
        if threads and not config.train.threads:  # a logging key: resuming with another is fine
            config.train.threads = threads
        return train(config, job["run_dir"], progress=False)

    def _progress_log(self, job: dict[str, Any]) -> tuple[Path, int, float]:
        return Path(job["run_dir"]) / "train.csv", 0, job["config"]["train"]["steps"]  # agent steps


@dataclass(frozen=True)
class SyntheticBenchmark(Benchmark):
    """The input/label adaptation experiments (``plastic.synthetic``): presets are its methods,
    games its tasks."""

    name: str = "synthetic"
    suite: str = "synthetic"
    default_presets: tuple[str, ...] = ("vanilla", "ln", "sam", "crelu", "reset", "plastic")
    description: str = ("input/label adaptation (plastic.synthetic); presets are its methods, "
                        "games its tasks")
    unit = "task"
    run_name_keys = {"task": "--games (or --tasks)", "method": "--presets", "seed": "--seeds"}

    @property
    def resume_ignored_keys(self) -> frozenset[str]:  # type: ignore[override]
        from plastic.synthetic.experiment import PLACEMENT_KEYS

        return PLACEMENT_KEYS

    @property
    def games(self) -> tuple[str, ...]:
        from plastic.synthetic import TASKS

        return tuple(TASKS)

    def check_presets(self, presets: Sequence[str]) -> None:
        from plastic.synthetic import METHODS

        unknown = [p for p in presets if p not in METHODS]
        if unknown:
            raise ValueError(f"unknown synthetic method(s) {', '.join(unknown)}; valid: {', '.join(METHODS)}")

    def settings(self, *, replay_ratio: float | None, steps: int | None,
                 device: str | None) -> dict[str, Any]:
        for flag, value in (("--replay-ratio", replay_ratio), ("--steps", steps)):
            if value is not None:
                raise ValueError(f"{flag} does not apply to the synthetic benchmark; use --set "
                                 "(e.g. --set chunks=20 --set iters_per_chunk=100)")
        return {} if device is None else {"device": device}

    def job_config(self, game: str, preset: str, seed: int,
                   overrides: dict[str, Any]) -> dict[str, Any]:
        from plastic.synthetic import SyntheticConfig
        from plastic.synthetic.experiment import DEFAULT_FIDELITY

        # The profile `plastic synthetic` uses (SyntheticConfig's own default stays "intent" so
        # that a config saved before the profiles existed loads as what it ran).
        config = SyntheticConfig.from_dict({"fidelity": DEFAULT_FIDELITY, **overrides,
                                            "task": game, "method": preset, "seed": seed})
        config.resolved()  # validates names and sizes now, not in a worker
        return config.to_dict()

    def differences_from_run(self, saved: dict[str, Any],
                             config: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        from plastic.synthetic import SyntheticConfig
        from plastic.synthetic.experiment import saved_config_differences

        return saved_config_differences(saved, SyntheticConfig.from_dict(config))

    def finished_summary(self, job: dict[str, Any]) -> dict[str, Any] | None:
        run_dir = Path(job["run_dir"])
        if not (run_dir / "summary.json").exists():
            return None  # an unfinished synthetic run starts again from scratch
        from plastic.synthetic import SyntheticConfig, run_synthetic

        # A finished run returns at once (nothing is trained); a different config raises.
        return run_synthetic(SyntheticConfig.from_dict(job["config"]), run_dir)

    def run(self, job: dict[str, Any], threads: int = 0) -> dict[str, Any]:
        from plastic.synthetic import SyntheticConfig, run_synthetic

        return run_synthetic(SyntheticConfig.from_dict(job["config"]), job["run_dir"], verbose=True)

    def _progress_log(self, job: dict[str, Any]) -> tuple[Path, int, float]:
        return Path(job["run_dir"]) / "metrics.csv", 1, job["config"]["chunks"]  # chunks from 0


def _atari_game(game: str, games: tuple[str, ...]) -> str:
    from plastic.envs.scores import atari_100k_game

    return atari_100k_game(game)  # also takes CamelCase (BankHeist)


BENCHMARKS: dict[str, Benchmark] = {
    "atari100k": RLBenchmark("atari100k", "atari", ("drq", "plastic"),
                             "Atari-100k: 26 games, 100k agent steps, human-normalised scores",
                             canonical=_atari_game),
    "minatar": RLBenchmark("minatar", "minatar", ("drq", "plastic"),
                           "MinAtar: 5 games, the CPU-scale testbed"),
    "dmc-medium": RLBenchmark("dmc-medium", "dmc", ("drq", "plastic"),
                              "DMC-Medium: 11 DeepMind Control tasks from pixels, 2M env steps, "
                              "returns"),
    "synthetic": SyntheticBenchmark(),
}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; valid benchmarks: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def summary_cpu_seconds(summary: dict[str, Any]) -> float | None:
    """A run's CPU seconds, final evaluation included (``cpu_time``'s total); None for runs that
    predate that record."""
    total = (summary.get("cpu_time") or {}).get("total")
    return None if total is None else float(total)


def summary_score(summary: dict[str, Any]) -> float | None:
    """The headline score of a run: mean evaluation return (RL) or final test accuracy."""
    for key in ("score", "final_test_acc"):
        if summary.get(key) is not None:
            return float(summary[key])
    return None
