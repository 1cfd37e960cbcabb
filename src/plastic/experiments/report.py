"""``plastic report DIR...``: final scores, aggregate metrics with confidence intervals, probability of
improvement, performance profiles, learning curves and per-game tables, as Markdown + PNG and as
one self-contained HTML page. Atari reports with a published baseline also place each final score
among the published runs of its game ("Against the published runs").

Normalised scores: Atari uses human-normalised scores, (score − random) / (human − random).
MinAtar has no human reference, so by default each game's scores are min-max normalised over all
runs in the report (baselines included): 0 is the lowest evaluation score any run recorded on that
game (at the end or during training), 1 the highest. That makes games comparable for aggregation,
but the scale moves when runs are added, and the optimality gap then measures the distance to the
best evaluation seen. ``--normalization none`` aggregates raw scores.
Synthetic runs report test accuracy, already on one scale.

What the report warns about (a "Warnings" list at the top of the report, and ``plastic: warning:``
lines from ``plastic report``): unreadable runs it skipped, torn last CSV rows it dropped,
duplicate runs it counted once, runs of different budgets or environment settings aggregated
together or compared (``collect``'s module docstring says what each does), and labels whose
aggregates have no confidence interval: with one run per game a bootstrap over runs has nothing
to resample, so the report gives the single value and "1 run: no CI" instead of an interval of
zero width; an interval of zero width over several runs is marked "zero-width CI".
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plastic.experiments import plots, stats
from plastic.experiments.benchmarks import summary_cpu_seconds
from plastic.experiments.collect import (
    Run,
    collect_runs,
    comparison_warnings,
    game_bounds,
    load_baseline,
    normalize,
    resolve_normalization,
    score_matrices,
)
from plastic.experiments.document import Document
from plastic.experiments.stats import (
    METRIC_TITLES,
    METRICS,
    aggregate_metrics,
    bootstrap_mean_ci,
    performance_profiles,
    probability_of_improvement,
)
from plastic.experiments.sweep import STATUS_FILE

EPISODE_BINS = 20
# The optimality gap's threshold γ in the aggregated unit: 1 for normalised scores and accuracies,
# a DeepMind Control task's maximum return (1 per control step, 1000 steps) for raw DMC returns.
OPTIMALITY_THRESHOLD = {"dmc": 1000.0}
SCORE_NAMES = {"human": "human-normalised score", "minmax": "min-max normalised score",
               "none": "score"}
NORMALIZATION_TEXT = {
    "human": "Scores are human-normalised per game, (score − random) / (human − random), with the "
             "standard Atari random and human reference scores.",
    "minmax": "There are no human reference scores for this benchmark, so each game's scores are "
              "min-max normalised over all runs in this report (baselines included): 0 = the lowest "
              "evaluation score any run recorded on that game (final or during training), 1 = the "
              "highest. The scale moves when runs are added; the optimality gap here is the shortfall "
              "from the best evaluation seen.",
    "none": "Scores are aggregated as they are (no normalisation).",
}


# ------------------------------------------------------------------------------------- curves
def _step_values(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The latest value at or before each grid point (NaN before the first)."""
    index = np.searchsorted(x, grid, side="right") - 1
    return np.where(index >= 0, y[np.clip(index, 0, None)], np.nan)


def _binned_values(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of the values falling in each bin (left-open), the last one carried over empty bins."""
    values = np.full(len(edges) - 1, np.nan)
    last = np.nan
    for i in range(len(edges) - 1):
        inside = (x > edges[i]) & (x <= edges[i + 1])
        last = float(np.mean(y[inside])) if inside.any() else last
        values[i] = last
    return values


def learning_curves(runs: Sequence[Run], labels: Sequence[str], *, bins: int = EPISODE_BINS,
                    seed: int = 0, confidence: float = 0.95
                    ) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, str]]:
    """``{game: {label: {"x", "mean", "low", "high", "seeds"}}}``: mean over seeds and its
    bootstrap CI on a common grid (evaluation steps, or bins of training episodes)."""
    curves: dict[str, dict[str, dict[str, Any]]] = {}
    ylabels: dict[str, str] = {}
    for game in sorted({r.game for r in runs if r.curve is not None}):
        game_runs = [r for r in runs if r.game == game and r.curve is not None]
        sources = {r.curve.source for r in game_runs}
        ylabels[game] = {"eval": "evaluation score", "episodes": "training episode return",
                         "chunks": "test accuracy"}[sorted(sources)[0]] if len(sources) == 1 else "score"
        curves[game] = {}
        for label in labels:
            group = [r for r in game_runs if r.label == label]
            if not group:
                continue
            if all(r.curve.source == "episodes" for r in group):
                end = max(float(r.curve.x.max()) for r in group)
                edges = np.linspace(0.0, end, bins + 1)
                grid = edges[1:]
                values = np.array([_binned_values(r.curve.x, r.curve.y, edges) for r in group])
                mean, low, high = bootstrap_mean_ci(values, seed=seed, confidence=confidence)
                curves[game][label] = {"x": grid, "mean": mean, "low": low, "high": high,
                                       "seeds": len(group)}
            else:
                curves[game][label] = _mean_curve([(r.curve.x, r.curve.y) for r in group], seed,
                                                  confidence)
    return curves, ylabels


def _mean_curve(series: Sequence[tuple[np.ndarray, np.ndarray]], seed: int,
                confidence: float) -> dict[str, Any]:
    """Mean over runs of step-wise series (each run's latest value at every step any run logged)
    and its bootstrap CI over runs."""
    grid = np.unique(np.concatenate([x for x, _ in series]))
    values = np.array([_step_values(x, y, grid) for x, y in series])
    mean, low, high = bootstrap_mean_ci(values, seed=seed, confidence=confidence)
    return {"x": grid, "mean": mean, "low": low, "high": high, "seeds": len(series)}


# --------------------------------------------------------------------------------- plasticity
PLASTICITY_KINDS = {"active": "active units (fraction)", "dormant": "dormant units (fraction, τ = 0.1)",
                    "weight_norm": "weight norm"}
# The ones drawn (those a run logged, at most four); the table holds every column.
PLASTICITY_FIGURES = ("feature_srank", "encoder_dormant", "head_dormant", "critic_dormant",
                      "head_weight_norm", "critic_weight_norm")
NOT_PLASTICITY = ("step", "env_steps")


def plasticity_title(column: str) -> str:
    """``encoder_dormant`` -> ``encoder: dormant units (fraction, τ = 0.1)``."""
    if column == "feature_srank":
        return "feature rank (srank, δ = 0.01)"
    for kind, title in PLASTICITY_KINDS.items():
        if column.endswith("_" + kind):
            return f"{column[: -len(kind) - 1]}: {title}"
    return column


def plasticity_columns(runs: Sequence[Run]) -> list[str]:
    """The metric columns any run logged, in the order first met."""
    columns: dict[str, None] = {}
    for run in runs:
        columns.update((c, None) for c in run.plasticity if c not in NOT_PLASTICITY)
    return list(columns)


def _finite_series(run: Run, column: str) -> tuple[np.ndarray, np.ndarray] | None:
    if column not in run.plasticity:
        return None
    x, y = run.plasticity["step"], run.plasticity[column]
    keep = np.isfinite(x) & np.isfinite(y)
    return (x[keep], y[keep]) if keep.any() else None


def plasticity_curves(runs: Sequence[Run], labels: Sequence[str], columns: Sequence[str], *,
                      seed: int = 0, confidence: float = 0.95
                      ) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{column: {game: {label: {"x", "mean", "low", "high", "seeds"}}}}`` over agent steps: the
    mean over seeds and its bootstrap CI, as the learning curves."""
    curves: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for column in columns:
        for game, game_runs in _by_game(runs).items():
            for label in labels:
                series = [xy for r in game_runs if r.label == label
                          if (xy := _finite_series(r, column)) is not None]
                if series:
                    curves.setdefault(column, {}).setdefault(game, {})[label] = _mean_curve(
                        series, seed, confidence)
    return curves


def plasticity_at_end(runs: Sequence[Run], labels: Sequence[str],
                      columns: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{game: {label: {column: mean over seeds of the run's last logged value, "seeds": n}}}``."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for game, game_runs in _by_game(runs).items():
        for label in labels:
            group = [r for r in game_runs if r.label == label and r.plasticity]
            if not group:
                continue
            row: dict[str, Any] = {"seeds": len(group)}
            for column in columns:
                last = [xy[1][-1] for r in group if (xy := _finite_series(r, column)) is not None]
                row[column] = float(np.mean(last)) if last else None
            table.setdefault(game, {})[label] = row
    return table


def reset_markers(runs: Sequence[Run], labels: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """``{game: {label: agent steps of the Resets}}`` (the union over seeds)."""
    markers: dict[str, dict[str, list[float]]] = {}
    for game, game_runs in _by_game(runs).items():
        for label in labels:
            steps = sorted({s for r in game_runs if r.label == label for s in r.reset_steps})
            if steps:
                markers.setdefault(game, {})[label] = steps
    return markers


def _plasticity_section(doc: Document, runs: Sequence[Run], labels: Sequence[str], figures: Path,
                        colors: dict[str, Any], seed: int, confidence: float) -> dict[str, Any]:
    """The report's "Plasticity during training" section; its numbers for aggregates.json."""
    columns = plasticity_columns(runs)
    if not columns:
        return {}
    at_end = plasticity_at_end(runs, labels, columns)
    curves = plasticity_curves(runs, labels, columns, seed=seed, confidence=confidence)
    markers = reset_markers(runs, labels)
    doc.heading("Plasticity during training")
    doc.paragraph(
        "Measured during training on 256 observations from the replay buffer (`train.metrics_interval`): "
        "per part of the network, the fraction of positive activations (before a CReLU: of its input) "
        "and of dormant units (a unit's mean |activation| at most 0.1 of its layer's mean, Sokar et al. "
        "2023), its weight norm, and the rank of the encoder's features (srank: the fewest singular "
        "values holding 99% of their sum, Kumar et al. 2021).")
    doc.table(["game", "label", "runs", *(plasticity_title(c) for c in columns)],
              [[game, label, str(row["seeds"]), *("" if row[c] is None else f"{row[c]:.4g}" for c in columns)]
               for game, by_label in at_end.items() for label, row in by_label.items()], text_columns=2)
    doc.paragraph("At the end of training: each run's last measurement, mean over runs.")
    drawn = [c for c in PLASTICITY_FIGURES if c in curves][:4]
    for column in drawn:
        name = f"plasticity_{column}.png"
        doc.figure(plots.plot_learning_curves(curves[column], labels, colors, figures / name,
                                              xlabel="agent steps",
                                              ylabels=dict.fromkeys(curves[column], plasticity_title(column)),
                                              markers=markers),
                   f"{plasticity_title(column)}: mean over seeds, shaded {100 * confidence:g}% bootstrap "
                   "CI over seeds; "
                   "dotted lines: Resets")
    return {"columns": columns, "at_end": at_end, "reset_steps": markers}


def normalized_curve_matrices(
    runs: Sequence[Run], labels: Sequence[str], games: Sequence[str], bounds: dict[str, tuple[float, float]]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(steps, {label: (runs, games, steps)})`` of normalised evaluation scores at the steps every
    run evaluated at; empty when runs did not evaluate during training at shared steps."""
    chosen = [r for r in runs if not r.baseline and r.label in labels and r.game in games]
    if not chosen or any(r.curve is None or r.curve.source not in ("eval", "chunks") for r in chosen):
        return np.array([]), {}
    shared = set(chosen[0].curve.x.tolist())
    for run in chosen[1:]:
        shared &= set(run.curve.x.tolist())
    grid = np.array(sorted(shared))
    if len(grid) < 2:
        return np.array([]), {}
    matrices = {}
    for label in labels:
        columns = [sorted((r for r in chosen if r.label == label and r.game == g), key=lambda r: r.seed)
                   for g in games]
        count = min(len(c) for c in columns)
        if count == 0:
            return np.array([]), {}
        matrices[label] = np.array([[
            (_step_values(c[i].curve.x, c[i].curve.y, grid) - bounds[g][0]) / (bounds[g][1] - bounds[g][0])
            for c, g in zip(columns, games)] for i in range(count)])
    return grid, matrices


# ------------------------------------------------------------------------------------- tables
def _ci(est: dict[str, float], digits: int = 3, runs: int | None = None) -> str:
    """``value [low, high]``; with fewer than 2 runs (per game) the value alone, said to have no
    CI, and an interval of zero width marked as such."""
    value = f"{est['value']:.{digits}f}"
    if runs is not None and runs < 2:
        return f"{value} (1 run: no CI)"
    text = f"{value} [{est['low']:.{digits}f}, {est['high']:.{digits}f}]"
    return f"{text} (zero-width CI)" if est["low"] == est["high"] else text


def _poi_cell(est: dict[str, float], x: str, y: str, runs: dict[str, int]) -> str:
    if runs[x] < 2 and runs[y] < 2:
        return _ci(est, runs=1).replace("1 run:", "1 run each:")
    single = [label for label in (x, y) if runs[label] < 2]
    if single:
        other = y if single[0] == x else x
        interval = f"{est['value']:.3f} [{est['low']:.3f}, {est['high']:.3f}]"
        return f"{interval} (1 run of {single[0]}: the CI covers the spread of {other}'s runs only)"
    return _ci(est)


def ci_warnings(matrices: dict[str, np.ndarray], aggregates: dict[str, dict[str, dict[str, float]]],
                labels: Sequence[str], level: str) -> list[str]:
    """A line for each label whose aggregates have no confidence interval (1 run per game) or
    one of zero width."""
    warnings = []
    for label in labels:
        runs = matrices[label].shape[0]
        if runs < 2:
            warnings.append(f"{label}: 1 run per game in the aggregates: no confidence interval (its "
                            f"IQM, median, mean and optimality gap are that run's); run more seeds for a "
                            f"{level} CI")
            continue
        estimates = aggregates[label]
        flat = [METRIC_TITLES[m] for m in METRICS if estimates[m]["low"] == estimates[m]["high"]]
        if flat:
            warnings.append(f"{label}: zero-width CI for {', '.join(flat)}: every bootstrap sample of its "
                            f"{runs} runs per game gave the same value")
    return warnings


def _number(value: float) -> str:
    size = abs(value)
    return f"{value:.0f}" if size >= 100 else f"{value:.1f}" if size >= 10 else f"{value:.2f}"


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return _number(values[0])
    return f"{_number(float(np.mean(values)))} ± {_number(float(np.std(values, ddof=1)))}"


def _pairs(labels: Sequence[str], sweep_labels: Sequence[str]) -> list[tuple[str, str]]:
    """Each run label against the ones listed before it, then against every baseline."""
    pairs = [(x, y) for i, x in enumerate(sweep_labels) for y in sweep_labels[:i]]
    pairs += [(x, y) for x in sweep_labels for y in labels if y not in sweep_labels]
    if not sweep_labels:  # baselines only
        pairs = [(x, y) for i, x in enumerate(labels) for y in labels[:i]]
    return pairs


def _sweep_failures(directories: Sequence[Path]) -> tuple[list[list[str]], list[str]]:
    """``[run, error]`` of every failed run the sweeps recorded, and a warning for each sweep
    status file that cannot be read (it is left out)."""
    rows, warnings = [], []
    for directory in directories:
        for path in sorted(Path(directory).rglob(STATUS_FILE)):
            try:
                status = json.loads(path.read_text(encoding="utf-8"))
                entries = status.get("runs", {}).items()
            except (OSError, ValueError, AttributeError) as error:
                warnings.append(f"skipped {path}: cannot be read ({error}); failed runs it lists are "
                                "not shown")
                continue
            for run_id, entry in entries:
                if isinstance(entry, dict) and entry.get("status") == "failed":
                    rows.append([str(path.parent / run_id), entry.get("error", "")])
    return rows, warnings


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _label_order(runs: Sequence[Run]) -> list[str]:
    """Sweep labels first (the base agent, then the others as they sort), then baselines."""
    bases = ("drq", "vanilla")
    ours = sorted({r.label for r in runs if not r.baseline}, key=lambda s: (s.split(" [")[0] not in bases, s))
    return ours + sorted({r.label for r in runs if r.baseline})


def cpu_seconds_text(summary: dict[str, Any]) -> str:
    """A run's CPU seconds (summary.json's ``cpu_time`` total), or "" where it predates that record."""
    total = summary_cpu_seconds(summary)
    return "" if total is None else f"{total:.0f}"


def _scores_csv(runs: Sequence[Run]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["label", "preset", "game", "seed", "score", "normalized", "steps", "updates",
                     "wall_seconds", "cpu_seconds", "path"])
    for r in runs:
        writer.writerow([r.label, r.preset, r.game, r.seed, f"{r.score:.6g}", f"{r.normalized:.6g}",
                         r.summary.get("steps", ""), r.summary.get("updates", ""),
                         r.summary.get("wall_seconds", r.summary.get("wall_time_s", "")),
                         "" if (cpu := summary_cpu_seconds(r.summary)) is None else cpu,
                         "" if r.path is None else str(r.path)])
    return buffer.getvalue()


# ------------------------------------------------------------------------------ published runs
def _by_game(runs: Sequence[Run]) -> dict[str, list[Run]]:
    games: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.game, r.seed)):
        games.setdefault(run.game, []).append(run)
    return games


def _game_against_published(game: str, ours: Sequence[Run], published: Sequence[Run]) -> dict[str, Any]:
    scores = np.array([r.score for r in published])
    mean = float(np.mean([r.score for r in ours]))
    return {"game": game, "published_runs": len(scores), "published_median": float(np.median(scores)),
            "seeds": [r.seed for r in ours], "scores": [r.score for r in ours],
            "percentiles": [stats.percentile_among(scores, r.score) for r in ours],
            "mean_score": mean, "mean_percentile": stats.percentile_among(scores, mean)}


def _placement(per_game: Sequence[dict[str, Any]], published: dict[str, list[Run]], seed: int,
               confidence: float) -> dict[str, float] | None:
    """``stats.percentile_placement`` over every run of ours (each seed a run); None where a game
    has a single published run (a baseline of one score per game: no spread to place runs in)."""
    if any(g["published_runs"] < 2 for g in per_game):
        return None
    games = [g for g in per_game for _ in g["percentiles"]]
    return stats.percentile_placement(
        [np.array([r.score for r in published[g["game"]]]) for g in games],
        [p for g in per_game for p in g["percentiles"]], seed=seed, confidence=confidence)


def _iqm(key: str, matrix: np.ndarray, **bootstrap: Any) -> dict[str, Any]:
    return {"runs": matrix.shape[0], **aggregate_metrics({key: matrix}, **bootstrap)[key]["iqm"]}


def against_published(runs: Sequence[Run], sweep_labels: Sequence[str], *, reps: int = 2000, seed: int = 0,
                      confidence: float = 0.95) -> list[dict[str, Any]]:
    """Each of our labels against each baseline, on the games both have: per game, the percentile
    (``stats.percentile_among``) of each of our runs' final score, and of our mean final score over
    seeds, among the baseline's runs; and the IQM of the normalised score of ours and of the
    baseline's runs over those games only, with stratified-bootstrap CIs."""
    bootstrap = {"reps": reps, "seed": seed, "confidence": confidence}
    results = []
    baseline_iqm: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    for baseline in sorted({r.label for r in runs if r.baseline}):
        published = _by_game([r for r in runs if r.label == baseline])
        for label in sweep_labels:
            ours = _by_game([r for r in runs if r.label == label])
            games = sorted(set(ours) & set(published))
            if not games:
                continue
            chosen = [r for r in runs if r.label in (label, baseline) and r.game in games]
            matrices, _, _ = score_matrices(chosen, [label, baseline])
            key = (baseline, tuple(games))
            if key not in baseline_iqm:  # the same games for several labels: one bootstrap
                baseline_iqm[key] = _iqm(baseline, matrices[baseline], **bootstrap)
            per_game = [_game_against_published(g, ours[g], published[g]) for g in games]
            results.append({
                "label": label, "baseline": baseline, "games": games,
                "not_in_baseline": sorted(set(ours) - set(published)),
                "iqm": _iqm(label, matrices[label], **bootstrap), "baseline_iqm": baseline_iqm[key],
                "per_game": per_game, "placement": _placement(per_game, published, seed, confidence),
            })
    return results


def _published_iqm_rows(group: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for c in group:
        games = len(c["games"])
        rows.append([c["label"], str(games), f"{c['iqm']['runs']} × {games}",
                     _ci(c["iqm"], runs=c["iqm"]["runs"]), f"{c['baseline_iqm']['runs']} × {games}",
                     _ci(c["baseline_iqm"], runs=c["baseline_iqm"]["runs"])])
    return rows


def _p_value_text(p: float) -> str:
    """A Monte Carlo P of 0 means below the draws' resolution, not impossible."""
    return "< 0.001" if p < 0.0005 else f"{p:.3f}"


def _placement_rows(group: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for c in group:
        placement = c["placement"]
        if placement is None:
            rows.append([c["label"], "", "", "needs 2 or more published runs of each game", "", "", "", ""])
            continue
        rows.append([c["label"], str(placement["runs"]), f"{placement['mean']:.1f}",
                     f"[{placement['low']:.1f}, {placement['high']:.1f}]",
                     _p_value_text(placement["p_value"]), f"{placement['spread']:.1f}",
                     f"[{placement['spread_low']:.1f}, {placement['spread_high']:.1f}]",
                     _p_value_text(placement["spread_p_value"])])
    return rows


def _published_game_rows(group: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [[c["label"], g["game"], str(g["published_runs"]), _number(g["published_median"]),
             ", ".join(_number(v) for v in g["scores"]), ", ".join(f"{p:.1f}" for p in g["percentiles"]),
             _number(g["mean_score"]), f"{g['mean_percentile']:.1f}"]
            for c in group for g in c["per_game"]]


def _published_section(doc: Document, comparisons: Sequence[dict[str, Any]], level: str,
                       score_name: str) -> None:
    doc.heading("Against the published runs")
    doc.paragraph(
        "Where our final scores fall among the published runs of each game. Percentile = 100 × (the "
        "fraction of published runs scoring strictly below ours + half the fraction scoring exactly the "
        "same): 0 = below every published run, 100 = above every one. Given for each of our runs (in "
        "seed order) and for our mean final score over seeds. The IQMs of the "
        f"{score_name} are over the games we ran only, for us and for the published runs alike, with "
        f"{level} stratified-bootstrap CIs. Last, a check of where our runs fall: were each of our "
        "runs one more published run of its game, its percentile would be distributed like a published "
        "run's among the other published runs (mean 50); the mean percentile over our runs (each seed "
        f"a run) would then fall in the {level} range given {level} of the time (Monte Carlo, "
        "independent draws per run), and P is the chance of a mean at least as far from 50 as ours. "
        "The mean sees location only: runs far above the published ones on some games and far below "
        "on others can average 50. The spread, the mean distance of our percentiles from 50, comes "
        "from the same draws; its P is the chance of a spread at least as large as ours, small when "
        "our runs depart from the published ones game by game or seed by seed, in either direction.")
    for baseline in dict.fromkeys(c["baseline"] for c in comparisons):
        group = [c for c in comparisons if c["baseline"] == baseline]
        doc.heading(baseline, level=3)
        doc.table(["", "games", "runs × games", f"IQM [{level} CI]", "published runs × games",
                   f"published IQM [{level} CI]"], _published_iqm_rows(group))
        doc.bullets([f"{c['label']}: left out, as {baseline} has no runs of them: "
                     f"{', '.join(c['not_in_baseline'])}" for c in group if c["not_in_baseline"]])
        doc.table(["", "game", "published runs", "published median", "our scores", "percentiles",
                   "our mean", "percentile of our mean"], _published_game_rows(group), text_columns=2)
        doc.table(["", "runs", "mean percentile of our runs",
                   f"{level} range if our runs were published runs", "P(a mean as far from 50)",
                   "spread: mean distance from 50", f"{level} range of the spread", "P(a spread as large)"],
                  _placement_rows(group))


# ------------------------------------------------------------------------------------- report
def replay_ratio_series(runs: Sequence[Run], labels: Sequence[str],
                        aggregates: dict[str, dict[str, dict[str, float]]],
                        metric: str = "iqm") -> dict[str, list[tuple[float, dict[str, float]]]]:
    """``{preset: [(replay ratio, estimate), ...]}`` for the presets whose labels differ only in
    ``train.replay_ratio``, with at least two ratios: the paper's Fig. 1 (score vs replay ratio)."""
    ratios: dict[str, set[float]] = {}
    preset_of: dict[str, str] = {}
    for run in runs:
        if run.baseline or run.label not in labels or "train.replay_ratio" not in run.config:
            continue
        ratios.setdefault(run.label, set()).add(float(run.config["train.replay_ratio"]))
        preset_of[run.label] = run.preset
    series: dict[str, list[tuple[float, dict[str, float]]]] = {}
    for preset in dict.fromkeys(preset_of.values()):
        group = [lb for lb in labels if preset_of.get(lb) == preset]
        if any(lb != f"{preset} [train.replay_ratio={_short_ratio(ratios[lb])}]" for lb in group):
            continue  # one ratio only, or labels that differ in other settings too
        series[preset] = sorted((next(iter(ratios[lb])), aggregates[lb][metric]) for lb in group)
    return series


def _short_ratio(values: set[float]) -> str:
    return f"{next(iter(values)):g}" if len(values) == 1 else "mixed"


def longest_game_text(lengths: Any) -> str:
    """The longest of the final evaluation's games (summary.json's ``lengths``), or ``""``."""
    return str(max(lengths)) if isinstance(lengths, list) and lengths else ""


def code_text(segments: Any) -> str:
    """``42d2a18`` or ``42d2a18 → 50739a6+`` (a resume by other code; + uncommitted changes)."""
    if not isinstance(segments, list):
        return ""
    names: list[str] = []
    for segment in segments:
        commit = segment.get("commit") if isinstance(segment, dict) else None
        name = (commit[:7] + ("+" if segment.get("dirty") else "")) if isinstance(commit, str) else "?"
        if not names or names[-1] != name:
            names.append(name)
    return " → ".join(names)


def _write_text(path: Path, text: str) -> None:
    """Atomically: a reader never sees half a report."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def build_report(directories: Sequence[str | Path], out: str | Path | None = None, *,
                 baselines: Sequence[str] = (), normalization: str = "auto", reps: int = 2000,
                 seed: int = 0, confidence: float = 0.95, title: str | None = None) -> dict[str, Any]:
    """Writes ``report.md``, ``report.html``, ``figures/*.png``, ``scores.csv`` and
    ``aggregates.json`` to ``out`` (default: ``DIR/report`` for one directory, else ``./report``);
    returns the numbers (aggregates, probability of improvement, paths)."""
    if reps < 100:
        raise ValueError(f"--reps must be >= 100 bootstrap samples, got {reps}")
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"--confidence must be in (0.5, 1), got {confidence}")
    directories = [Path(d).expanduser() for d in directories]
    if not directories:
        raise ValueError("give at least one directory with runs")
    out = Path(out) if out is not None else (directories[0] / "report" if len(directories) == 1
                                             else Path("report"))
    found = collect_runs(directories)
    runs, unfinished = found.runs, found.unfinished
    suite = runs[0].suite
    for spec in baselines:
        runs.extend(load_baseline(spec, suite))
    norm = resolve_normalization(normalization, suite)
    bounds = game_bounds(runs, norm)
    normalize(runs, bounds)
    labels = _label_order(runs)
    sweep_labels = [lb for lb in labels if any(r.label == lb and not r.baseline for r in runs)]
    matrices, games, notes = score_matrices(runs, labels)
    runs_per_game = {label: int(matrices[label].shape[0]) for label in labels}
    score_name = SCORE_NAMES[norm] if suite != "synthetic" or norm != "none" else "test accuracy"

    gamma = OPTIMALITY_THRESHOLD.get(suite, 1.0) if norm == "none" else 1.0
    aggregates = aggregate_metrics(matrices, reps=reps, seed=seed, confidence=confidence, gamma=gamma)
    pairs = _pairs(labels, sweep_labels)
    poi = probability_of_improvement(matrices, pairs, reps=reps, seed=seed, confidence=confidence)
    # τ up to the 99th percentile of all scores: a few outlier runs would otherwise squeeze the plot.
    pooled = np.concatenate([m.ravel() for m in matrices.values()])
    low_tau = min(0.0, float(pooled.min()))
    taus = np.linspace(low_tau, max(float(np.quantile(pooled, 0.99)), low_tau + 1e-6), 101)
    profiles = performance_profiles(matrices, taus, reps=reps, seed=seed, confidence=confidence)
    curves, ylabels = learning_curves([r for r in runs if not r.baseline], sweep_labels, seed=seed,
                                      confidence=confidence)
    curve_steps, curve_matrices = normalized_curve_matrices(runs, sweep_labels, games, bounds)
    iqm_over_time = stats.iqm_curves(curve_matrices, reps=reps, seed=seed, confidence=confidence)

    figures = out / "figures"
    colors = plots.label_colors(labels)
    level = f"{100 * confidence:g}%"
    failures, status_warnings = _sweep_failures(directories)
    warnings = [*(f"skipped {path}: {why}" for path, why in found.skipped), *status_warnings,
                *found.warnings, *comparison_warnings(runs, labels),
                *ci_warnings(matrices, aggregates, labels, level)]
    doc = Document(title or f"{suite} report")
    game_word = "task" if suite in ("synthetic", "dmc") else "game"
    run_games = len({r.game for r in runs if not r.baseline})
    doc.paragraph(
        f"{_count(sum(not r.baseline for r in runs), 'finished run')} from "
        f"{', '.join(f'`{d}`' for d in directories)} ({len(unfinished)} unfinished"
        f"{f', {len(found.skipped)} unreadable and skipped' if found.skipped else ''}), "
        f"{_count(run_games, game_word)}; generated {time.strftime('%Y-%m-%d %H:%M')}. "
        f"{NORMALIZATION_TEXT[norm] if suite != 'synthetic' else ''}"
        f" Aggregates over {_count(len(games), game_word)}: interquartile mean (IQM), median, mean and "
        f"optimality gap (γ = {gamma:g}) of the {score_name}, with {level} stratified-bootstrap "
        f"confidence intervals ({reps} bootstrap samples, rliable).")
    doc.bullets([f"**Warning:** {w}" for w in warnings])
    doc.bullets(notes)

    doc.heading("Aggregate scores")
    doc.table(["", "runs × games", *(METRIC_TITLES[m] for m in METRICS)],
              [[lb, f"{matrices[lb].shape[0]} × {matrices[lb].shape[1]}",
                *(_ci(aggregates[lb][m], runs=runs_per_game[lb]) for m in METRICS)] for lb in labels])
    doc.paragraph(f"Value [{level} CI]. Higher is better except for the optimality gap.")
    doc.figure(plots.plot_aggregates(aggregates, labels, colors, figures / "aggregates.png", score_name),
               f"IQM, median, mean and optimality gap with {level} stratified-bootstrap CIs")

    if pairs:
        doc.heading("Probability of improvement")
        doc.table(["X", "Y", f"P(X > Y) [{level} CI]"],
                  [[x, y, _poi_cell(poi[(x, y)], x, y, runs_per_game)] for x, y in pairs], text_columns=2)
        doc.paragraph("P(X > Y): the probability that a run of X beats a run of Y on a randomly "
                      "chosen game (Mann-Whitney U statistic, averaged over games).")
        poi_png = figures / "probability_of_improvement.png"
        doc.figure(plots.plot_probability_of_improvement(poi, colors, poi_png),
                   "Probability of improvement with stratified-bootstrap CIs")

    doc.heading("Performance profiles")
    doc.figure(plots.plot_performance_profiles(profiles, colors, figures / "performance_profiles.png",
                                               score_name),
               f"Fraction of runs with {score_name} above τ ({level} CI)")

    if curves:
        doc.heading("Learning curves")
        sources = {r.curve.source for r in runs if r.curve is not None}
        # DMC plots env steps, as the paper does (tasks differ in action repeat); Atari-100k and
        # MinAtar count agent steps, which their env_steps equal.
        xlabel = "chunk" if sources == {"chunks"} else "env steps" if suite == "dmc" else "agent steps"
        how = ("evaluation scores" if sources == {"eval"} else
               f"mean return of training episodes in {EPISODE_BINS} bins of {xlabel}"
               if sources == {"episodes"} else "test accuracy after each chunk" if sources == {"chunks"}
               else "evaluation scores where runs evaluated during training, else training episode returns")
        if iqm_over_time:
            doc.figure(plots.plot_iqm_curves(curve_steps, iqm_over_time, colors, figures / "iqm_curves.png",
                                             xlabel=xlabel, score_name=score_name),
                       f"IQM of the {score_name} over {_count(len(games), game_word)} during training, "
                       f"shaded {level} stratified-bootstrap CI")
        # Resets are logged in agent steps: drawn where the x axis counts them too (not DMC's env steps)
        markers = reset_markers([r for r in runs if not r.baseline], sweep_labels) \
            if xlabel == "agent steps" else {}
        doc.figure(plots.plot_learning_curves(curves, sweep_labels, colors, figures / "learning_curves.png",
                                              xlabel=xlabel, ylabels=ylabels, markers=markers),
                   f"Raw {how}: mean over seeds, shaded {level} bootstrap CI over seeds"
                   + ("; dotted lines: Resets" if markers else ""))

    plasticity = _plasticity_section(doc, [r for r in runs if not r.baseline], sweep_labels, figures,
                                     colors, seed, confidence)

    scaling = replay_ratio_series(runs, sweep_labels, aggregates)
    if scaling:
        doc.heading("Scaling with the replay ratio")
        all_ratios = sorted({ratio for points in scaling.values() for ratio, _ in points})
        cells = {(preset, ratio): _ci(est, runs=runs_per_game.get(f"{preset} [train.replay_ratio={ratio:g}]"))
                 for preset, points in scaling.items() for ratio, est in points}
        doc.table(["preset", *(f"RR {r:g}" for r in all_ratios)],
                  [[preset, *(cells.get((preset, r), "") for r in all_ratios)] for preset in scaling])
        doc.figure(plots.plot_replay_ratio_scaling(scaling, figures / "replay_ratio_scaling.png", score_name),
                   f"IQM of the {score_name} against the replay ratio (updates per agent step), {level} CI")

    published = (against_published(runs, sweep_labels, reps=reps, seed=seed, confidence=confidence)
                 if suite == "atari" else [])
    if published:
        _published_section(doc, published, level, score_name)

    doc.heading("Per-game scores")
    atari = norm == "human"
    headers = ["game", *(["random", "human"] if atari else []), *labels]
    rows = []
    for game in sorted({r.game for r in runs}):
        row = [game]
        if atari:
            from plastic.envs.scores import HUMAN_SCORES, RANDOM_SCORES

            row += [f"{RANDOM_SCORES[game]:g}", f"{HUMAN_SCORES[game]:g}"]
        row += [_mean_std([r.score for r in runs if r.game == game and r.label == lb]) for lb in labels]
        rows.append(row)
    doc.table(headers, rows)
    doc.paragraph("Raw final score: mean ± sample standard deviation over runs (a single value for one run).")

    doc.heading("Per-run scores")
    doc.table(["label", "game", "seed", "score", score_name if norm != "none" else "normalised", "steps",
               "updates", "wall time (s)", "CPU time (s)", "longest game", "code"],
              [[r.label, r.game, str(r.seed), f"{r.score:.4g}", f"{r.normalized:.3f}",
                str(r.summary.get("steps", "")), str(r.summary.get("updates", "")),
                f"{float(r.summary.get('wall_seconds', r.summary.get('wall_time_s', 0)) or 0):.0f}",
                cpu_seconds_text(r.summary), longest_game_text(r.summary.get("lengths")),
                code_text(r.summary.get("provenance"))]
               for r in sorted((r for r in runs if not r.baseline), key=lambda r: (r.label, r.game, r.seed))],
              text_columns=2)
    doc.paragraph("Wall time: the training loop's. CPU time: the whole run's, final evaluation "
                  "included, in the process's CPU seconds, which a paused run or one waiting for a "
                  "core does not spend (empty for runs that predate its record). "
                  "Longest game: of the final evaluation, in agent steps (empty for runs that predate "
                  "its record); one that ran to the env's horizon is a policy stuck somewhere. "
                  "Code: the commit of each start and resume of the run, `+` where its `src/` had "
                  "uncommitted changes (summary.json's provenance; empty for runs that predate it).")
    if failures or unfinished or found.skipped:
        doc.heading("Failed, unfinished and unreadable runs" if found.skipped
                    else "Failed and unfinished runs")
        if failures:
            doc.table(["run", "error"], failures, text_columns=2)
        doc.bullets([f"unreadable, skipped: `{p}`: {why}" for p, why in found.skipped])
        if unfinished:
            doc.bullets([f"unfinished: `{p}`" for p in unfinished])

    out.mkdir(parents=True, exist_ok=True)
    _write_text(out / "report.md", doc.to_markdown(out))
    _write_text(out / "report.html", doc.to_html())
    _write_text(out / "scores.csv", _scores_csv(runs))
    numbers = {
        "suite": suite, "normalization": norm, "games": games, "labels": labels, "reps": reps,
        "confidence": confidence, "aggregates": aggregates,
        "probability_of_improvement": [{"x": x, "y": y, **poi[(x, y)]} for x, y in pairs],
        "notes": notes, "warnings": warnings, "runs_per_game": runs_per_game,
        "skipped": [{"path": str(p), "problem": why} for p, why in found.skipped],
        "replay_ratio_scaling": {preset: [{"replay_ratio": ratio, **est} for ratio, est in points]
                                 for preset, points in scaling.items()},
        "against_published": published,
        "plasticity": plasticity,
        "iqm_curves": {label: {"steps": curve_steps.tolist(), **{k: v.tolist() for k, v in c.items()}}
                       for label, c in iqm_over_time.items()},
    }
    _write_text(out / "aggregates.json", json.dumps(numbers, indent=2))
    return {**numbers, "out": str(out), "markdown": str(out / "report.md"), "html": str(out / "report.html")}
