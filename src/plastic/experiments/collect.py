"""Reading finished runs (and published baselines) into records a report can aggregate.

Runs are grouped by *label*: the preset name, extended by the settings that differ when runs of
one preset were made with different configurations (``drq [train.replay_ratio=4]``), so sweeps
at several replay ratios can share one report without being mixed up.

What a report should not do quietly, and what it does instead:

- A run directory whose ``summary.json`` or ``config.json`` is not valid JSON (torn, truncated),
  or whose metrics CSV is damaged, is skipped with one line naming it and what is wrong; the
  others are reported. A CSV whose *last* row alone is torn (cut short while being written or
  copied) keeps its other rows: that row is dropped with a warning (the final score is in
  ``summary.json``; only the curve's last point goes).
- The same label, game and seed found twice (a resumed copy beside the original) counts once,
  with a warning naming both paths: the copy that trained furthest is kept, among equals the
  one that finished last (``drop_duplicates``).
- A config saved before one of its keys existed (a run made by an older version) takes that
  key's schema default, which is what the key's absence meant (new knobs default to the old
  behaviour; presets set other values): runs of one preset made before and after
  ``train.precision`` existed compare as fp32 against bf16, not as one label. (Not the keys a
  DMC task derives for itself, such as its action repeat.)
- Runs of one game that differ in budget (``train.steps``; DMC: env steps) or environment
  settings (``env.*``) and are aggregated together or compared with each other, published
  Atari-100k baselines (100k agent steps) included, get a warning naming the labels, the
  setting and the values (``comparison_warnings``).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plastic.configs.schema import LOGGING_KEYS, Config, flatten
from plastic.data import published_baseline, published_baseline_names
from plastic.envs.scores import HUMAN_SCORES, RANDOM_SCORES, atari_100k_game, camel_to_snake
from plastic.suites import SUITES

# Settings that say where or how verbosely a run ran, not what it computed; and per-run identity.
IGNORED_KEYS = LOGGING_KEYS | {
    "game", "seed", "task", "data_dir", "dataset", "train.eval_envs", "preset", "method",
}
NORMALIZATIONS = ("auto", "human", "minmax", "none")
SCHEMA_SUITES = tuple(SUITES)  # the suites whose runs' configs are a ``Config``
SCHEMA_DEFAULTS = flatten(Config().to_dict())
MIN_EVAL_POINTS = 3  # fewer evaluations than this: the learning curve comes from training episodes
PUBLISHED_ATARI_STEPS = 100_000  # the Atari-100k budget of the bundled published baselines


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
    warnings: list[str] = field(default_factory=list)  # e.g. a torn last CSV row dropped
    # plasticity.csv's columns ("step" and the metrics: active/dormant units, weight norms, srank)
    plasticity: dict[str, np.ndarray] = field(default_factory=dict)
    reset_steps: tuple[float, ...] = ()  # the agent steps of the run's Resets (resets.csv)

    @property
    def baseline(self) -> bool:
        return self.path is None


class UnreadableRunError(ValueError):
    """A finished run directory whose files cannot be read as they are (a torn or hand-broken
    file): the report skips the run and says why in one line."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UnreadableRunError(f"cannot read {path.name}: {error.strerror}") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        torn = " (truncated?)" if isinstance(error, json.JSONDecodeError) else ""
        raise UnreadableRunError(f"{path.name} is not valid JSON{torn}: {error}") from None


def read_metrics_csv(path: Path) -> tuple[list[dict[str, float]], list[str]]:
    """The rows of a run's metrics CSV as numbers (empty cells NaN), and warnings.

    A *torn last row* — the last line cut short while it was being written or copied: fewer or
    more cells than the header, or a cell that is not a number — is dropped with a warning, and
    the rest of the file is used: the run's final score lives in ``summary.json``, and only the
    last point of its curve is lost. A malformed row anywhere else means the file is damaged:
    ``UnreadableRunError``, and the report skips the run."""
    if not path.exists() or not path.stat().st_size:
        return [], []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as error:
        raise UnreadableRunError(f"cannot read {path.name}: {error}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        lines = [(reader.line_num, row) for row in reader if row]
    except csv.Error as error:
        raise UnreadableRunError(f"{path.name} line {reader.line_num}: {error}") from None
    if not lines:
        return [], []
    header = lines[0][1]
    rows, warnings = [], []
    for index, (number, cells) in enumerate(lines[1:], start=1):
        problem = _row_problem(header, cells)
        if problem is None:
            rows.append({k: float(v) if v.strip() else math.nan for k, v in zip(header, cells)})
        elif index == len(lines) - 1:
            warnings.append(f"{path}: dropped its torn last row (line {number}: {problem}); the "
                            f"{_count(len(rows), 'row')} before it are used")
        else:
            raise UnreadableRunError(f"{path.name} line {number} is damaged ({problem}), and it is "
                                     "not the last row")
    return rows, warnings


def _row_problem(header: list[str], cells: list[str]) -> str | None:
    if len(cells) != len(header):
        return f"{len(cells)} of {len(header)} cells"
    for name, value in zip(header, cells):
        if value.strip():
            try:
                float(value)
            except ValueError:
                return f"{name} = {value!r} is not a number"
    return None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _columns(rows: list[dict[str, float]], path: Path, *names: str) -> None:
    missing = [n for n in names if rows and n not in rows[0]]
    if missing:
        raise UnreadableRunError(f"{path.name} has no {', '.join(missing)} column "
                                 f"(columns: {', '.join(rows[0])})")


def _env_steps(rows: list[dict[str, float]], config: dict[str, Any]) -> np.ndarray:
    """The rows' environment steps; runs logged before the ``env_steps`` column existed count
    agent steps × the DMC action repeat of their config."""
    if rows and "env_steps" in rows[0]:
        return np.array([r["env_steps"] for r in rows])
    repeat = (config.get("env.action_repeat") or 1) if config.get("suite") == "dmc" else 1
    return np.array([r["step"] * repeat for r in rows])


def _curve(run_dir: Path, suite: str, config: dict[str, Any]) -> tuple[Curve | None, list[str]]:
    """The run's learning curve and warnings about its CSV files."""
    if suite == "synthetic":
        path = run_dir / "metrics.csv"
        rows, warnings = read_metrics_csv(path)
        _columns(rows, path, "chunk", "test_acc")
        if rows:
            return Curve(np.array([r["chunk"] + 1 for r in rows]), np.array([r["test_acc"] for r in rows]),
                         "chunks"), warnings
        return None, warnings
    path = run_dir / "eval.csv"
    rows, warnings = read_metrics_csv(path)
    _columns(rows, path, "step", "score")
    if len(rows) >= MIN_EVAL_POINTS:
        return Curve(_env_steps(rows, config), np.array([r["score"] for r in rows]), "eval"), warnings
    path = run_dir / "episodes.csv"
    rows, more = read_metrics_csv(path)
    _columns(rows, path, "step", "return")
    if rows:
        return Curve(_env_steps(rows, config), np.array([r["return"] for r in rows]), "episodes"), \
            warnings + more
    return None, warnings + more


def read_run(summary_path: Path) -> Run:
    """One finished run; ``UnreadableRunError`` (one line: what is wrong) when its summary, config
    or metrics cannot be read. A torn last CSV row is dropped: ``Run.warnings`` says so."""
    run_dir = summary_path.parent
    summary = _read_json(summary_path)
    if not isinstance(summary, dict):
        raise UnreadableRunError(f"{summary_path.name} holds {type(summary).__name__}, not an object")
    config_path = run_dir / "config.json"
    raw_config = _read_json(config_path) if config_path.exists() else {}
    if not isinstance(raw_config, dict):
        raise UnreadableRunError(f"{config_path.name} holds {type(raw_config).__name__}, not an object")
    config = flatten(raw_config)
    suite = summary.get("suite") or ("synthetic" if "task" in summary else config.get("suite", "unknown"))
    if suite in SCHEMA_SUITES:  # not the keys a task derives for itself: no one default stands for them
        per_game = _per_game_keys(suite)
        config = {**{k: v for k, v in SCHEMA_DEFAULTS.items() if k not in per_game}, **config}
    score = summary.get("score", summary.get("final_test_acc"))
    if score is None:
        raise UnreadableRunError(f"{summary_path.name} has no score (keys: {', '.join(sorted(summary))})")
    game = summary.get("game") or summary.get("task")
    if not game:
        raise UnreadableRunError(f"{summary_path.name} names no game or task")
    try:
        score, seed = float(score), int(summary.get("seed", 0))
    except (TypeError, ValueError):
        raise UnreadableRunError(f"{summary_path.name}: score {score!r} or seed "
                                 f"{summary.get('seed')!r} is not a number") from None
    preset = str(summary.get("preset") or summary.get("method"))
    curve, warnings = _curve(run_dir, suite, config)
    plasticity, reset_steps, more = _plasticity(run_dir)
    return Run(label=preset, preset=preset, suite=suite, game=str(game), seed=seed, score=score,
               path=run_dir, summary=summary, config=config, curve=curve, warnings=warnings + more,
               plasticity=plasticity, reset_steps=reset_steps)


def _plasticity(run_dir: Path) -> tuple[dict[str, np.ndarray], tuple[float, ...], list[str]]:
    """The run's plasticity metrics by column and its Reset steps, and warnings. These files only
    add to a report: a damaged one is left out with a warning, and the run is still reported."""
    warnings: list[str] = []
    metrics = _optional_rows(run_dir / "plasticity.csv", warnings)
    resets = _optional_rows(run_dir / "resets.csv", warnings)
    columns = {key: np.array([row.get(key, math.nan) for row in metrics]) for key in metrics[0]} \
        if metrics else {}
    return columns, tuple(sorted(row["step"] for row in resets)), warnings


def _optional_rows(path: Path, warnings: list[str]) -> list[dict[str, float]]:
    """A metrics CSV's rows that have a step; none (and a warning) if the file is damaged."""
    try:
        rows, more = read_metrics_csv(path)
    except UnreadableRunError as error:
        warnings.append(f"{path.parent}: left out its {path.name} ({error})")
        return []
    warnings += more
    return rows if rows and "step" in rows[0] else []


@dataclass
class Collection:
    """What ``collect_runs`` found: the finished runs (one per label, game and seed), the run
    directories not finished yet, the unreadable ones it skipped (``(path, what is wrong)``) and
    warnings (torn CSV rows dropped, duplicate runs counted once)."""

    runs: list[Run]
    unfinished: list[Path]
    skipped: list[tuple[Path, str]]
    warnings: list[str]


def collect_runs(directories: Sequence[str | Path]) -> Collection:
    """Every finished run under the directories, labelled (``assign_labels``), each label, game
    and seed counted once (``drop_duplicates``). A run whose files cannot be read is skipped and
    listed, not an error, unless no run can be read."""
    runs, unfinished, skipped, seen = [], [], [], set()
    for directory in directories:
        root = Path(directory).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"no such directory: {root}")
        for path in sorted(root.rglob("config.json")):
            if path.parent.resolve() in seen:
                continue
            seen.add(path.parent.resolve())
            summary = path.parent / "summary.json"
            if not summary.exists():
                unfinished.append(path.parent)
                continue
            try:
                runs.append(read_run(summary))
            except UnreadableRunError as error:
                skipped.append((path.parent, str(error)))
    where = ", ".join(map(str, directories))
    if not runs:
        unreadable = "".join(f"; skipped {p}: {why}" for p, why in skipped)
        raise ValueError(f"no {'readable ' if skipped else ''}finished runs (summary.json) under {where}"
                         f"{unreadable}")
    suites = sorted({r.suite for r in runs})
    if len(suites) > 1:
        raise ValueError(f"the directories mix benchmarks ({', '.join(suites)}); report each separately")
    assign_labels(runs)
    runs, duplicates = drop_duplicates(runs)
    warnings = [w for r in runs for w in r.warnings] + duplicates
    return Collection(runs, unfinished, skipped, warnings)


def find_runs(directories: Sequence[str | Path]) -> tuple[list[Run], list[Path]]:
    """Every finished, readable run under the directories, and the run directories not finished
    yet (``collect_runs`` also lists the unreadable ones and the warnings)."""
    found = collect_runs(directories)
    return found.runs, found.unfinished


def assign_labels(runs: list[Run]) -> None:
    """Label = preset, plus ``[key=value, ...]`` for settings that differ between its runs.

    On DeepMind Control the settings a task derives for itself (its action repeat, its agent
    steps for 2M env steps, SAM's ρ, ...; ``plastic.configs.presets.dmc_task_defaults``) differ
    from task to task by design: they count as differing only where runs of one task differ in
    them, and a label names them only on the runs that depart from their task's value."""
    by_preset: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_preset[run.preset].append(run)
    for preset, group in by_preset.items():
        per_game = _per_game_keys(group[0].suite)
        # Keys that only some runs have come from a newer config schema, not from a setting.
        keys = sorted(set.intersection(*(set(r.config) for r in group)) - IGNORED_KEYS)
        differing = [k for k in keys if _differs(group, k, by_game=k in per_game)]
        for run in group:
            defaults = _dmc_task_values(run) if per_game & set(differing) else {}
            settings = ", ".join(f"{k}={_short(run.config.get(k))}" for k in differing
                                 if k not in per_game or run.config.get(k) != defaults.get(k))
            run.label = f"{preset} [{settings}]" if settings else preset


def _differs(runs: Sequence[Run], key: str, *, by_game: bool) -> bool:
    if not by_game:
        return len({json.dumps(r.config.get(key)) for r in runs}) > 1
    values: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        values[run.game].add(json.dumps(run.config.get(key)))
    return any(len(v) > 1 for v in values.values())


@functools.cache
def _per_game_keys(suite: str) -> frozenset[str]:
    """Config keys a suite sets per game (task) when the preset and the user leave them alone."""
    if suite != "dmc":
        return frozenset()
    from plastic.configs.presets import dmc_task_defaults
    from plastic.configs.schema import Config
    from plastic.envs.dmc_tasks import DMC_MEDIUM_TASKS

    resolved, defaults = dmc_task_defaults(Config(suite="dmc", game=DMC_MEDIUM_TASKS[0]))
    return frozenset(resolved) | frozenset(defaults)


def _dmc_task_values(run: Run) -> dict[str, Any]:
    """The values ``_per_game_keys`` take on the run's task when the preset and the user leave
    them alone, given the run's other settings (its replay ratio sets the Reset interval, its
    action repeat the agent steps of 2M env steps, ...)."""
    from plastic.configs.presets import dmc_task_defaults
    from plastic.configs.schema import Config, apply_overrides
    from plastic.envs.dmc_tasks import task_settings

    config = Config(suite="dmc", game=run.game)
    given = ("fidelity", "train.replay_ratio", "env.obs", "env.action_repeat", "reset.interval_unit")
    try:
        apply_overrides(config, {k: run.config[k] for k in given if k in run.config})
    except ValueError:  # a config from another version: every value counts as set
        return {}
    _, defaults = dmc_task_defaults(config)
    return {**defaults, "env.action_repeat": task_settings(run.game).action_repeat}


def steps_run(run: Run) -> float:
    """How far a run trained: agent steps (synthetic: SGD updates), 0 when it does not say."""
    summary = run.summary
    if run.suite == "synthetic":
        return float(summary.get("chunks", 0) or 0) * float(summary.get("iters_per_chunk", 0) or 0)
    value = summary.get("steps", run.config.get("train.steps", 0))
    return float(value) if isinstance(value, (int, float)) else 0.0


def drop_duplicates(runs: Sequence[Run]) -> tuple[list[Run], list[str]]:
    """Each (label, game, seed) once, and a warning for each one found more than once, naming
    every copy: a resumed copy of a run beside the original, or one run reached under two names.

    The copy kept is the one that trained furthest (``steps_run``); among equals, the one whose
    ``summary.json`` was written last (the later run), then the last path in sorted order."""
    groups: dict[tuple[str, str, int], list[Run]] = defaultdict(list)
    for run in runs:
        if not run.baseline:
            groups[(run.label, run.game, run.seed)].append(run)
    dropped: set[int] = set()
    warnings = []
    for (label, game, seed), group in groups.items():
        if len(group) < 2:
            continue
        keep = max(group, key=lambda r: (steps_run(r), _finished_at(r), str(r.path)))
        others = [r for r in group if r is not keep]
        dropped.update(id(r) for r in others)
        why = ("it trained furthest" if steps_run(keep) > max(steps_run(r) for r in others)
               else "it finished last")
        warnings.append(
            f"{label}, {game}, seed {seed} was found {len(group)} times: counted once, keeping "
            f"{keep.path} ({_steps_text(keep)}; {why}) and leaving out "
            + ", ".join(f"{r.path} ({_steps_text(r)})" for r in others))
    return [r for r in runs if id(r) not in dropped], warnings


def _finished_at(run: Run) -> float:
    try:
        return (run.path / "summary.json").stat().st_mtime if run.path is not None else 0.0
    except OSError:
        return 0.0


def _steps_text(run: Run) -> str:
    steps = steps_run(run)
    return f"{steps:,.0f} {'updates' if run.suite == 'synthetic' else 'steps'}"


# ---------------------------------------------------------------------------- unlike comparisons
def protocol_settings(run: Run) -> dict[str, Any]:
    """The settings that make two final scores of one game comparable: the budget a run trained
    for and the environment (or data) it was scored in. Settings a run does not record (a
    baseline file's budget, for one) are left out."""
    summary, config = run.summary, run.config
    if run.suite == "synthetic":
        settings = {k: summary.get(k, config.get(k)) for k in ("chunks", "iters_per_chunk", "dataset")}
        return {k: v for k, v in settings.items() if v is not None}
    settings = {}
    steps = summary.get("steps", config.get("train.steps"))
    if run.suite == "dmc":  # tasks differ in action repeat: the budget is in env steps
        repeat = config.get("env.action_repeat")
        env_steps = summary.get("env_steps") or (steps * repeat if steps and repeat else None)
        if env_steps is not None:
            settings["env steps"] = env_steps
    elif steps is not None:
        settings["train.steps"] = steps
    settings.update({k: v for k, v in config.items() if k.startswith("env.")})
    if "agent.eval_epsilon" in config and run.suite != "dmc":
        settings["agent.eval_epsilon"] = config["agent.eval_epsilon"]
    return settings


def comparison_warnings(runs: Sequence[Run], labels: Sequence[str]) -> list[str]:
    """A line for each setting of ``protocol_settings`` that differs between runs of one game
    the report puts side by side: between the runs of one label (aggregated together), or
    between labels (compared with each other, published baselines included)."""
    settings = {id(r): protocol_settings(r) for r in runs}
    keys = list(dict.fromkeys(k for r in runs for k in settings[id(r)]))
    games = sorted({r.game for r in runs})
    warnings = []
    for key in keys:
        values: dict[str, dict[str, set[str]]] = {label: defaultdict(set) for label in labels}
        for run in runs:
            if key in settings[id(run)] and run.label in values:
                values[run.label][run.game].add(_value_text(settings[id(run)][key]))
        for label in labels:
            mixed = {g: v for g, v in values[label].items() if len(v) > 1}
            if mixed:
                warnings.append(f"{label}: its runs differ in {key} ({_games_values(mixed)}) and are "
                                "aggregated together as one")
        unlike = [g for g in games
                  if len({frozenset(values[lb][g]) for lb in labels if values[lb].get(g)}) > 1]
        if not unlike:
            continue
        shown = [(lb, sorted(set().union(*(values[lb].get(g, set()) for g in unlike)), key=_sort_key))
                 for lb in labels]
        where = "" if unlike == [g for g in games if sum(bool(values[lb].get(g)) for lb in labels) > 1] \
            else f" on {_listed(unlike)}"
        published = [lb for lb, _ in shown if any(r.baseline and r.label == lb and key in settings[id(r)]
                                                  for r in runs)]
        note = (f" ({', '.join(published)}: published Atari-100k runs, {PUBLISHED_ATARI_STEPS:,} agent "
                "steps)" if published and key == "train.steps" else "")
        warnings.append(f"unlike comparison: {key} differs between the runs compared{where}: "
                        + "; ".join(f"{lb}: {', '.join(v)}" for lb, v in shown if v) + note)
    return warnings


def _value_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1000 else f"{value:g}"


def _sort_key(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text.replace(",", "")), text)
    except ValueError:
        return (1, 0.0, text)


def _games_values(mixed: dict[str, set[str]]) -> str:
    return "; ".join(f"{g}: {', '.join(sorted(v, key=_sort_key))}" for g, v in list(mixed.items())[:3]) \
        + (f"; {len(mixed) - 3} more games" if len(mixed) > 3 else "")


def _listed(games: Sequence[str], limit: int = 5) -> str:
    return ", ".join(games[:limit]) + (f" and {len(games) - limit} more" if len(games) > limit else "")


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
    without ``atari100k_published_``/``_runs``, followed by " (published)".

    The bundled baselines (and files named like them) trained for ``PUBLISHED_ATARI_STEPS``
    agent steps, which their runs' ``summary["steps"]`` records; a file's budget is unknown."""
    label, data, steps = _read_baseline(spec, suite)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"baseline {spec}: a baseline is a JSON object {{game: [score of each run, ...]}}")
    summary = {} if steps is None else {"steps": steps}
    runs = []
    for game_name, scores in data.items():
        game = atari_100k_game(game_name) if suite == "atari" else camel_to_snake(game_name)
        runs.extend(Run(label=label, preset=label, suite=suite, game=game, seed=i, score=float(s),
                        summary=dict(summary)) for i, s in enumerate(scores))
    return runs


def _read_baseline(spec: str, suite: str) -> tuple[str, Any, int | None]:
    """``(label, parsed JSON, agent steps when known)`` of a ``--baseline`` argument."""
    label, sep, target = spec.partition("=")
    if not sep or Path(spec).is_file():  # a file name may hold "="
        label, target = "", spec
    bundled = published_baseline(target)
    if bundled is not None:
        if suite != "atari":
            raise ValueError(f"the published baseline {bundled.name!r} holds Atari-100k scores; "
                             f"these runs are {suite}")
        return label or f"{bundled.title} (published)", bundled.read(), PUBLISHED_ATARI_STEPS
    path = Path(target).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"baseline {target!r} is neither a published baseline shipped with plastic "
            f"({', '.join(published_baseline_names())}; case-insensitive) nor a file: give one of those "
            "names or the path of a JSON file {game: [final score of each run, ...]}")
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"baseline {path} is not valid JSON: {error}") from None
    known = _bundled_copy(path) is not None and suite == "atari"
    return label or _file_label(path), data, PUBLISHED_ATARI_STEPS if known else None


def _bundled_copy(path: Path) -> Any:
    return published_baseline(path.stem.removeprefix("atari100k_published_").removesuffix("_runs"))


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
