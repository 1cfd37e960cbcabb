"""Aggregate statistics with rliable (Agarwal et al., 2021): IQM, median, mean and optimality gap
with stratified-bootstrap confidence intervals, probability of improvement, performance profiles.

Score matrices are ``(runs, games)``. rliable's bootstrap draws from NumPy's *global* random state,
so every estimate here seeds it (``np.random.seed(seed)``) right before asking rliable, one key at
a time: a preset's interval does not depend on which other presets are in the report.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

METRICS = ("iqm", "median", "mean", "optimality_gap")
METRIC_TITLES = {"iqm": "IQM", "median": "Median", "mean": "Mean", "optimality_gap": "Optimality gap"}


def _rliable() -> tuple[Any, Any]:
    try:
        from rliable import library, metrics
    except ImportError as error:
        raise RuntimeError("reports need rliable: pip install 'rliable>=1.2' 'pandas>=2.0,<3' "
                           "(or plastic[report]); rliable 1.2 fails to import with pandas 3") from error
    return library, metrics


def aggregate_function(gamma: float = 1.0):
    """``scores -> [IQM, median, mean, optimality gap]`` as rliable computes them."""
    _, rm = _rliable()

    def aggregate(scores: np.ndarray) -> np.ndarray:
        return np.array([rm.aggregate_iqm(scores), rm.aggregate_median(scores), rm.aggregate_mean(scores),
                         rm.aggregate_optimality_gap(scores, gamma)])

    return aggregate


def aggregate_metrics(score_dict: Mapping[str, np.ndarray], *, reps: int = 2000, seed: int = 0,
                      confidence: float = 0.95, gamma: float = 1.0) -> dict[str, dict[str, dict[str, float]]]:
    """``{key: {metric: {"value", "low", "high"}}}`` for every ``(runs, games)`` matrix."""
    library, _ = _rliable()
    func = aggregate_function(gamma)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for key, scores in score_dict.items():
        _check_matrix(key, scores)
        np.random.seed(seed)
        points, intervals = library.get_interval_estimates(
            {key: np.asarray(scores, dtype=float)}, func, reps=reps, confidence_interval_size=confidence)
        results[key] = {
            metric: {"value": float(points[key][i]), "low": float(intervals[key][0, i]),
                     "high": float(intervals[key][1, i])}
            for i, metric in enumerate(METRICS)
        }
    return results


def iqm_curves(curve_dict: Mapping[str, np.ndarray], *, reps: int = 2000, seed: int = 0,
               confidence: float = 0.95) -> dict[str, dict[str, np.ndarray]]:
    """IQM over runs × games at each point of ``(runs, games, points)`` arrays, with
    stratified-bootstrap CIs (rliable's sample-efficiency curves)."""
    library, rm = _rliable()
    results = {}
    for key, curves in curve_dict.items():
        curves = np.asarray(curves, float)
        np.random.seed(seed)
        points, intervals = library.get_interval_estimates(
            {key: curves}, lambda s: np.array([rm.aggregate_iqm(s[..., t]) for t in range(s.shape[-1])]),
            reps=reps, confidence_interval_size=confidence)
        results[key] = {"value": points[key], "low": intervals[key][0], "high": intervals[key][1]}
    return results


def improvement_probability(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """P(X > Y) averaged over games: per game the Mann-Whitney U statistic of X over Y divided by
    ``runs_x · runs_y``, i.e. the fraction of run pairs X wins, ties counting one half.

    The same number as ``rliable.metrics.probability_of_improvement``, which calls scipy's
    ``mannwhitneyu`` once per game (milliseconds each: thousands of bootstrap samples over 26
    games would take many minutes); counted directly here it is a few array operations."""
    x = np.asarray(scores_x, float)[:, None, :]
    y = np.asarray(scores_y, float)[None, :, :]
    wins = (x > y).mean(axis=(0, 1)) + 0.5 * (x == y).mean(axis=(0, 1))
    return float(wins.mean())


def percentile_among(published: np.ndarray, score: float) -> float:
    """Where ``score`` falls among published runs' scores, in percent: 100 × (the fraction of
    published runs scoring strictly below it + half the fraction scoring exactly the same).

    The mid-rank percentile (``scipy.stats.percentileofscore(..., kind="mean")``): 0 below every
    run, 100 above every run, 50 when tying every run."""
    runs = np.asarray(published, float)
    return float(100.0 * ((runs < score).mean() + 0.5 * (runs == score).mean()))


def percentile_placement(published_per_run: Sequence[np.ndarray], percentiles: Sequence[float], *,
                         draws: int = 200_000, seed: int = 0, confidence: float = 0.95) -> dict[str, float]:
    """Is the mean percentile of our runs what it would be if each run were one more published run?

    ``published_per_run[i]`` holds the published scores of run ``i``'s game and ``percentiles[i]``
    its ``percentile_among`` them. Were run ``i`` exchangeable with those runs, its percentile would
    be distributed like a published run's percentile among the other published runs of its game
    (ties count one half, as in ``percentile_among``), whose mean is exactly 50. Drawing one such
    leave-one-out percentile per run, independently, ``draws`` times gives the null distribution
    of the mean: ``low``/``high`` bound its central ``confidence`` range and ``p_value`` is the
    fraction of draws at least as far from 50 as ``mean``, our runs' mean percentile.

    The mean tests location only: runs split between both ends (some games far above the published
    runs, others far below) can average 50. ``spread``, the mean distance of our percentiles from
    50, is drawn from the same draws: ``spread_low``/``spread_high`` bound its central range and
    ``spread_p_value`` is the fraction of draws at least as spread as ours (one-sided: more spread
    than published runs would give, i.e. game- or seed-dependent departures from them)."""
    if len(published_per_run) != len(percentiles) or not percentiles:
        raise ValueError("one published array per run, and at least one run")
    rng = np.random.default_rng(seed)
    sums, distances = np.zeros(draws), np.zeros(draws)
    for published in published_per_run:
        scores = np.sort(np.asarray(published, float))
        if scores.size < 2:
            raise ValueError("a game needs at least 2 published runs for a leave-one-out percentile")
        below = np.searchsorted(scores, scores, side="left")
        ties = np.searchsorted(scores, scores, side="right") - below - 1  # other runs scoring the same
        leave_one_out = 100.0 * (below + 0.5 * ties) / (scores.size - 1)
        drawn = leave_one_out[rng.integers(0, scores.size, size=draws)]
        sums += drawn
        distances += np.abs(drawn - 50.0)
    means, spreads = sums / len(percentiles), distances / len(percentiles)
    observed = float(np.mean(percentiles))
    observed_spread = float(np.mean(np.abs(np.asarray(percentiles, float) - 50.0)))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    spread_low, spread_high = np.percentile(spreads, [tail, 100 - tail])
    # a small tolerance: a draw equal to the observed value counts, whatever the float rounding
    far = np.abs(means - 50.0) >= abs(observed - 50.0) - 1e-9
    return {"runs": len(percentiles), "mean": observed, "low": float(low), "high": float(high),
            "p_value": float(far.mean()), "spread": observed_spread, "spread_low": float(spread_low),
            "spread_high": float(spread_high),
            "spread_p_value": float((spreads >= observed_spread - 1e-9).mean()), "draws": draws}


def run_score_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """The fraction of all runs × games with a score above each τ (rliable's run-score
    distribution, vectorised over τ instead of one ``np.vectorize`` call per τ)."""
    return (np.asarray(scores, float).reshape(-1, 1) > np.asarray(taus, float)[None, :]).mean(axis=0)


def probability_of_improvement(score_dict: Mapping[str, np.ndarray], pairs: list[tuple[str, str]], *,
                               reps: int = 2000, seed: int = 0,
                               confidence: float = 0.95) -> dict[tuple[str, str], dict[str, float]]:
    """P(X > Y) averaged over games, with a stratified-bootstrap CI, for each ``(X, Y)``."""
    library, _ = _rliable()
    results = {}
    for x, y in pairs:
        np.random.seed(seed)
        key = f"{x},{y}"
        points, intervals = library.get_interval_estimates(
            {key: [np.asarray(score_dict[x], float), np.asarray(score_dict[y], float)]},
            lambda a, b: np.array([improvement_probability(a, b)]),
            reps=reps, confidence_interval_size=confidence)
        results[(x, y)] = {"value": float(points[key][0]), "low": float(intervals[key][0, 0]),
                           "high": float(intervals[key][1, 0])}
    return results


def performance_profiles(score_dict: Mapping[str, np.ndarray], taus: np.ndarray, *, reps: int = 2000,
                         seed: int = 0, confidence: float = 0.95) -> dict[str, dict[str, np.ndarray]]:
    """Run-score distributions: the fraction of runs with score > τ, with bootstrap CIs."""
    library, _ = _rliable()
    results = {}
    for key, scores in score_dict.items():
        np.random.seed(seed)
        points, intervals = library.create_performance_profile(
            {key: np.asarray(scores, float)}, taus, custom_profile_func=run_score_profile, reps=reps,
            confidence_interval_size=confidence)
        results[key] = {"tau": np.asarray(taus), "value": np.asarray(points[key]),
                        "low": np.asarray(intervals[key][0]), "high": np.asarray(intervals[key][1])}
    return results


def bootstrap_mean_ci(values: np.ndarray, *, reps: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 (seeds) of a ``(seeds, points)`` array and its percentile-bootstrap CI,
    resampling seeds; NaNs (a run with no value there yet) are left out."""
    values = np.asarray(values, float)
    with warnings.catch_warnings():  # all-NaN columns (no run there yet) stay NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=0)
        if values.shape[0] < 2:
            return mean, mean.copy(), mean.copy()
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, values.shape[0], size=(reps, values.shape[0]))
        means = np.nanmean(values[picks], axis=1)  # (reps, points)
        tail = 100 * (1 - confidence) / 2
        low, high = np.nanpercentile(means, [tail, 100 - tail], axis=0)
    return mean, low, high


def _check_matrix(key: str, scores: Any) -> None:
    array = np.asarray(scores)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{key}: scores must be a (runs, games) matrix, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{key}: scores contain NaN or infinity")
