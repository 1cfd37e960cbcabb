"""The benchmarks a sweep can run: which games (or tasks) and presets (or methods) they have, how a
run's configuration is built, and how one run is executed in a worker.

A *job* is a plain, picklable dict (it crosses process and machine boundaries)::

    {"id": "breakout/drq/seed0", "benchmark": "minatar", "run_dir": "/abs/path",
     "config": {...}}                 # Config.to_dict() or SyntheticConfig.to_dict()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plastic.envs.dmc_tasks import DMC_MEDIUM_TASKS
from plastic.envs.minatar import MINATAR_GAMES
from plastic.envs.scores import ATARI_100K_GAMES, atari_100k_game


@dataclass(frozen=True)
class Benchmark:
    name: str
    kind: str  # "rl": plastic.train; "synthetic": plastic.synthetic
    suite: str  # the config suite ("atari", "minatar", "dmc") or "synthetic"
    games: tuple[str, ...]  # default games (RL) or tasks (synthetic)
    default_presets: tuple[str, ...]
    description: str


def _synthetic_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from plastic.synthetic import METHODS, TASKS

    return tuple(TASKS), tuple(METHODS)


BENCHMARKS: dict[str, Benchmark] = {
    "atari100k": Benchmark("atari100k", "rl", "atari", ATARI_100K_GAMES, ("drq", "plastic"),
                           "Atari-100k: 26 games, 100k agent steps, human-normalised scores"),
    "minatar": Benchmark("minatar", "rl", "minatar", MINATAR_GAMES, ("drq", "plastic"),
                         "MinAtar: 5 games, the CPU-scale testbed"),
    "dmc-medium": Benchmark("dmc-medium", "rl", "dmc", DMC_MEDIUM_TASKS, ("drq", "plastic"),
                            "DMC-Medium: 11 DeepMind Control tasks from pixels, 2M env steps, returns"),
    "synthetic": Benchmark("synthetic", "synthetic", "synthetic", ("input", "label"),
                           ("vanilla", "ln", "sam", "crelu", "reset", "plastic"),
                           "input/label adaptation (plastic.synthetic); presets are its methods, "
                           "games its tasks"),
}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; valid benchmarks: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def canonical_game(benchmark: Benchmark, game: str) -> str:
    """Checks a game (or task) name; Atari games may be given in CamelCase (``BankHeist``), and a
    DMC sweep may run any dm_control suite task besides DMC-Medium's."""
    if benchmark.suite == "atari":
        return atari_100k_game(game)
    if benchmark.suite == "dmc" and game not in benchmark.games:
        from plastic.envs.dmc_tasks import all_dmc_task_names

        if game not in all_dmc_task_names():
            raise ValueError(f"unknown DeepMind Control task {game!r}; DMC-Medium: "
                             f"{', '.join(benchmark.games)}; any suite task: "
                             f"{', '.join(all_dmc_task_names())}")
        return game
    if game not in benchmark.games:
        what = "task" if benchmark.kind == "synthetic" else "game"
        raise ValueError(f"unknown {benchmark.name} {what} {game!r}; valid: {', '.join(benchmark.games)}")
    return game


def _parse_scalar(text: Any) -> Any:
    """``--set`` values for the synthetic config: int, float, bool, none, else the string."""
    if not isinstance(text, str):
        return text
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def build_job_config(benchmark: Benchmark, game: str, preset: str, seed: int,
                     overrides: dict[str, Any]) -> dict[str, Any]:
    """The full configuration of one run as a dict; bad names and values raise ``ValueError``."""
    if benchmark.kind == "rl":
        from plastic.configs import build_config

        return build_config(benchmark.suite, game, preset, seed=seed, overrides=overrides).to_dict()
    from plastic.synthetic import SyntheticConfig

    values = {key: _parse_scalar(value) for key, value in overrides.items()}
    values.update(task=game, method=preset, seed=seed)
    config = SyntheticConfig.from_dict(values)
    config.resolved()  # validates names and sizes now, not in a worker
    return config.to_dict()


def finished_summary(job: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of a finished run, None if it still has to run (or resume); raises
    ``ValueError`` when the run directory holds a run with a different configuration."""
    run_dir = Path(job["run_dir"])
    if get_benchmark(job["benchmark"]).kind == "rl":
        from plastic.configs import Config
        from plastic.train.checkpoint import read_json
        from plastic.train.loop import check_run_dir

        if check_run_dir(run_dir, Config.from_dict(job["config"])) != "finished":
            return None
        return read_json(run_dir / "summary.json")
    if not (run_dir / "summary.json").exists():
        return None  # an unfinished synthetic run starts again from scratch
    from plastic.synthetic import SyntheticConfig, run_synthetic

    # A finished run returns at once (nothing is trained); a different config raises.
    return run_synthetic(SyntheticConfig.from_dict(job["config"]), run_dir)


def run_job(job: dict[str, Any], threads: int = 0) -> dict[str, Any]:
    """Runs (or resumes, or just reads back) one run; returns its summary. ``threads``: the
    worker's torch threads, used by an RL run whose config leaves ``train.threads`` at 0."""
    benchmark = get_benchmark(job["benchmark"])
    if benchmark.kind == "rl":
        from plastic.configs import Config
        from plastic.train.loop import train

        config = Config.from_dict(job["config"])
        if threads and not config.train.threads:  # a logging key: resuming with another is fine
            config.train.threads = threads
        return train(config, job["run_dir"], progress=False)
    from plastic.synthetic import SyntheticConfig, run_synthetic

    return run_synthetic(SyntheticConfig.from_dict(job["config"]), job["run_dir"], verbose=True)


def run_progress(job: dict[str, Any]) -> float | None:
    """How far a running run is (0-1), from the last row of its log; None if unknown yet."""
    run_dir = Path(job["run_dir"])
    if get_benchmark(job["benchmark"]).kind == "rl":  # first column: agent step
        path, offset, total = run_dir / "train.csv", 0, job["config"]["train"]["steps"]
    else:  # first column: chunk, counted from 0
        path, offset, total = run_dir / "metrics.csv", 1, job["config"]["chunks"]
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 512))
            last = handle.read().decode(errors="replace").strip().splitlines()[-1]
        return min(1.0, (float(last.split(",")[0]) + offset) / total)
    except (OSError, IndexError, ValueError, ZeroDivisionError):
        return None


def summary_score(summary: dict[str, Any]) -> float | None:
    """The headline score of a run: mean evaluation return (RL) or final test accuracy."""
    for key in ("score", "final_test_acc"):
        if summary.get(key) is not None:
            return float(summary[key])
    return None


def check_presets(benchmark: Benchmark, presets: Sequence[str]) -> None:
    if benchmark.kind == "synthetic":
        valid = _synthetic_names()[1]
        unknown = [p for p in presets if p not in valid]
        if unknown:
            raise ValueError(f"unknown synthetic method(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    else:
        from plastic.configs import resolve_preset

        for preset in presets:
            resolve_preset(preset)
