"""Reading finished runs (and published baselines) into records a report can aggregate.

Runs are grouped by *label*: the preset name, extended by the settings that differ when runs of
one preset were made with different configurations (``drq [train.replay_ratio=4]``), so sweeps
at several replay ratios can share one report without being mixed up.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plastic.configs.schema import LOGGING_KEYS, flatten
from plastic.data import published_baseline, published_baseline_names
from plastic.envs.scores import HUMAN_SCORES, RANDOM_SCORES, atari_100k_game, camel_to_snake

# Settings that say where or how verbosely a run ran, not what it computed; and per-run identity.
IGNORED_KEYS = LOGGING_KEYS | {
    "game", "seed", "task", "data_dir", "dataset", "train.eval_envs", "preset", "method",
}
NORMALIZATIONS = ("auto", "human", "minmax", "none")
MIN_EVAL_POINTS = 3  # fewer evaluations than this: the learning curve comes from training episodes


@dataclass
class Curve:
    x: np.ndarray  # environment steps (DMC: agent steps × action repeat), or chunks
    y: np.ndarray
    source: str  # "eval", "episodes" or "chunks"


@dataclass
class Run:
    label: str
    suite: str
    game: str
    seed: int
    score: float
    preset: str = ""
    path: Path | None = None  # None: a published baseline
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # flattened
    curve: Curve | None = None
    normalized: float = math.nan

    @property
    def baseline(self) -> bool:
        return self.path is None


def _read_csv(path: Path) -> list[dict[str, float]]:
    from plastic.train.logger import read_csv

    return read_csv(path) if path.exists() and path.stat().st_size else []


def _env_steps(rows: list[dict[str, float]], config: dict[str, Any]) -> np.ndarray:
    """The rows' environment steps; runs logged before the ``env_steps`` column existed count
    agent steps × the DMC action repeat of their config."""
    if rows and "env_steps" in rows[0]:
        return np.array([r["env_steps"] for r in rows])
    repeat = (config.get("env.action_repeat") or 1) if config.get("suite") == "dmc" else 1
    return np.array([r["step"] * repeat for r in rows])


def _curve(run_dir: Path, suite: str, config: dict[str, Any]) -> Curve | None:
    if suite == "synthetic":
        rows = _read_csv(run_dir / "metrics.csv")
        if rows:
            return Curve(np.array([r["chunk"] + 1 for r in rows]), np.array([r["test_acc"] for r in rows]),
                         "chunks")
        return None
    rows = _read_csv(run_dir / "eval.csv")
    if len(rows) >= MIN_EVAL_POINTS:
        return Curve(_env_steps(rows, config), np.array([r["score"] for r in rows]), "eval")
    rows = _read_csv(run_dir / "episodes.csv")
    if rows:
        return Curve(_env_steps(rows, config), np.array([r["return"] for r in rows]), "episodes")
    return None


def read_run(summary_path: Path) -> Run:
    run_dir = summary_path.parent
    summary = json.loads(summary_path.read_text())
    config_path = run_dir / "config.json"
    config = flatten(json.loads(config_path.read_text())) if config_path.exists() else {}
    suite = summary.get("suite") or ("synthetic" if "task" in summary else config.get("suite", "unknown"))
    score = summary.get("score", summary.get("final_test_acc"))
    if score is None:
        raise ValueError(f"{summary_path} has no score (keys: {', '.join(sorted(summary))})")
    preset = str(summary.get("preset") or summary.get("method"))
    return Run(label=preset, preset=preset, suite=suite, game=str(summary.get("game") or summary["task"]),
               seed=int(summary.get("seed", 0)), score=float(score), path=run_dir, summary=summary,
               config=config, curve=_curve(run_dir, suite, config))


def find_runs(directories: Sequence[str | Path]) -> tuple[list[Run], list[Path]]:
    """Every finished run under the directories, and the run directories not finished yet."""
    runs, unfinished, seen = [], [], set()
    for directory in directories:
        root = Path(directory).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"no such directory: {root}")
        for path in sorted(root.rglob("config.json")):
            if path.parent.resolve() in seen:
                continue
            seen.add(path.parent.resolve())
            summary = path.parent / "summary.json"
            if summary.exists():
                runs.append(read_run(summary))
            else:
                unfinished.append(path.parent)
    if not runs:
        raise ValueError(f"no finished runs (summary.json) under {', '.join(map(str, directories))}")
    suites = sorted({r.suite for r in runs})
    if len(suites) > 1:
        raise ValueError(f"the directories mix benchmarks ({', '.join(suites)}); report each separately")
    assign_labels(runs)
    return runs, unfinished


def assign_labels(runs: list[Run]) -> None:
    """Label = preset, plus ``[key=value, ...]`` for settings that differ between its runs."""
    by_preset: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_preset[run.preset].append(run)
    for preset, group in by_preset.items():
        # Keys that only some runs have come from a newer config schema, not from a setting.
        keys = sorted(set.intersection(*(set(r.config) for r in group)) - IGNORED_KEYS)
        differing = [k for k in keys if len({json.dumps(r.config.get(k)) for r in group}) > 1]
        if not differing:
            continue
        for run in group:
            settings = ", ".join(f"{k}={_short(run.config.get(k))}" for k in differing)
            run.label = f"{preset} [{settings}]"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def load_baseline(spec: str, suite: str) -> list[Run]:
    """A baseline's runs from ``[LABEL=]NAME`` or ``[LABEL=]FILE``.

    NAME is one of the published Atari-100k baselines that ship with plastic (``der``, ``drq``,
    ``drq-eps``, ``spr``; case-insensitive, see ``plastic.data``); it wins over a file of the same
    name (give that as ``./der``). FILE is JSON ``{game: [final score of each run, ...]}``, game
    names CamelCase or snake_case. LABEL defaults to the published agent's name, or the file name
    without ``atari100k_published_``/``_runs``, followed by " (published)"."""
    label, data = _read_baseline(spec, suite)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"baseline {spec}: a baseline is a JSON object {{game: [score of each run, ...]}}")
    runs = []
    for game_name, scores in data.items():
        game = atari_100k_game(game_name) if suite == "atari" else camel_to_snake(game_name)
        runs.extend(Run(label=label, preset=label, suite=suite, game=game, seed=i, score=float(s))
                    for i, s in enumerate(scores))
    return runs


def _read_baseline(spec: str, suite: str) -> tuple[str, Any]:
    """``(label, parsed JSON)`` of a ``--baseline`` argument."""
    label, sep, target = spec.partition("=")
    if not sep or Path(spec).is_file():  # a file name may hold "="
        label, target = "", spec
    bundled = published_baseline(target)
    if bundled is not None:
        if suite != "atari":
            raise ValueError(f"the published baseline {bundled.name!r} holds Atari-100k scores; "
                             f"these runs are {suite}")
        return label or f"{bundled.title} (published)", bundled.read()
    path = Path(target).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"baseline {target!r} is neither a published baseline shipped with plastic "
            f"({', '.join(published_baseline_names())}; case-insensitive) nor a file: give one of those "
            "names or the path of a JSON file {game: [final score of each run, ...]}")
    return label or _file_label(path), json.loads(path.read_text())


def _file_label(path: Path) -> str:
    """``atari100k_published_DrQeps_runs.json`` -> ``DrQ(ε) (published)``, as the bundled copy."""
    stem = path.stem.removeprefix("atari100k_published_").removesuffix("_runs")
    bundled = published_baseline(stem)
    return f"{bundled.title if bundled else stem} (published)"


def resolve_normalization(normalization: str, suite: str) -> str:
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
    if normalization == "auto":
        # DMC returns share one 0-1000 scale, and the paper aggregates them as they are.
        return {"atari": "human", "synthetic": "none", "dmc": "none"}.get(suite, "minmax")
    if normalization == "human" and suite != "atari":
        raise ValueError(f"human-normalised scores exist for Atari only, not {suite}; "
                         "use --normalization minmax or none")
    return normalization


def game_bounds(runs: Sequence[Run], normalization: str) -> dict[str, tuple[float, float]]:
    """Per game the (zero, one) of the normalised scale."""
    games = sorted({r.game for r in runs})
    if normalization == "human":
        return {g: (RANDOM_SCORES[g], HUMAN_SCORES[g]) for g in games}
    if normalization == "minmax":
        bounds = {}
        for game in games:  # final scores, and evaluations during training (not exploring episodes)
            scores = [r.score for r in runs if r.game == game]
            scores += [float(v) for r in runs if r.game == game and r.curve is not None
                       and r.curve.source in ("eval", "chunks") for v in r.curve.y if np.isfinite(v)]
            low, high = min(scores), max(scores)
            bounds[game] = (low, high if high > low else low + 1.0)
        return bounds
    return {g: (0.0, 1.0) for g in games}


def normalize(runs: Sequence[Run], bounds: dict[str, tuple[float, float]]) -> None:
    for run in runs:
        zero, one = bounds[run.game]
        run.normalized = (run.score - zero) / (one - zero)


def score_matrices(runs: Sequence[Run], labels: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str],
                                                                         list[str]]:
    """``{label: (runs, games)}`` normalised-score matrices over the games every label has, with
    as many runs per game as every one of them has (lowest seeds first); and notes on what was
    left out to make them rectangular."""
    games_of = {label: {r.game for r in runs if r.label == label} for label in labels}
    common = sorted(set.intersection(*games_of.values())) if games_of else []
    notes = []
    if not common:
        raise ValueError("no game has runs of every preset/baseline in the report: "
                         + "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in games_of.items()))
    for label, games in games_of.items():
        if set(games) - set(common):
            notes.append(f"{label}: games {', '.join(sorted(set(games) - set(common)))} left out of the "
                         "aggregates (not every entry has them)")
    matrices = {}
    for label in labels:
        columns = [sorted((r for r in runs if r.label == label and r.game == g), key=lambda r: r.seed)
                   for g in common]
        count = min(len(c) for c in columns)
        if any(len(c) != count for c in columns):
            notes.append(f"{label}: {count} run(s) per game used (the fewest any game has)")
        matrices[label] = np.array([[c[i].normalized for c in columns] for i in range(count)])
    return matrices, common, notes
