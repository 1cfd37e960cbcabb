"""The report's figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plastic.experiments.stats import METRIC_TITLES, METRICS


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def label_colors(labels: Sequence[str]) -> dict[str, Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def compact_number(value: float, _position: object = None) -> str:
    """A tick label that stays short on a step axis: 20000 -> "20k", 2500000 -> "2.5M"."""
    for factor, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:g}"


def _compact_x(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(compact_number))


def padded_limits(values: Sequence[float], fraction: float = 0.08) -> tuple[float, float]:
    """Axis limits with room on both sides of ``values``, so that a bar or marker at the extremes
    (an IQM of 0.059 or 0.941 with the others in between, a probability of 1) is drawn inside
    the frame rather than on it; values all alike get room in proportion to their size."""
    finite = [float(v) for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    span = high - low if high > low else max(abs(low), 1.0)
    return low - fraction * span, high + fraction * span


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_aggregates(aggregates: Mapping[str, Mapping[str, Mapping[str, float]]], labels: Sequence[str],
                    colors: Mapping[str, Any], path: Path, score_name: str) -> Path:
    """rliable-style interval estimates: one panel per metric, a bar (95% CI) and tick per label,
    the panel's limits padded around every bar and tick (a bar's edge is sticky in matplotlib's
    autoscaling, which would put the lowest bar on the frame)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.3 * len(METRICS), 0.45 * len(labels) + 1.3),
                             sharey=True)
    for ax, metric in zip(axes, METRICS):
        for row, label in enumerate(labels):
            est = aggregates[label][metric]
            ax.barh(row, est["high"] - est["low"], left=est["low"], height=0.6, color=colors[label],
                    alpha=0.75)
            ax.vlines(est["value"], row - 0.3, row + 0.3, color="k", linewidth=1.5)
        ax.set_xlim(*padded_limits([aggregates[lb][metric][k] for lb in labels
                                    for k in ("low", "value", "high")]))
        ax.set_title(METRIC_TITLES[metric])
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel(score_name)
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].invert_yaxis()
    fig.tight_layout()
    return _save(fig, path)


def plot_probability_of_improvement(poi: Mapping[tuple[str, str], Mapping[str, float]],
                                    colors: Mapping[str, Any], path: Path) -> Path:
    plt = _pyplot()
    pairs = list(poi)
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(pairs) + 1.2))
    for row, (x, y) in enumerate(pairs):
        est = poi[(x, y)]
        ax.barh(row, est["high"] - est["low"], left=est["low"], height=0.6, color=colors[x], alpha=0.75)
        ax.vlines(est["value"], row - 0.3, row + 0.3, color="k", linewidth=1.5)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(pairs)), [f"P({x} > {y})" for x, y in pairs])
    ax.invert_yaxis()
    ax.set_xlim(-0.04, 1.04)  # a probability of 0 or 1 drawn inside the frame, not on it
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
    ax.set_xlabel("probability of improvement (95% CI)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_performance_profiles(profiles: Mapping[str, Mapping[str, np.ndarray]], colors: Mapping[str, Any],
                              path: Path, score_name: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, profile in profiles.items():
        ax.plot(profile["tau"], profile["value"], color=colors[label], label=label, linewidth=2)
        ax.fill_between(profile["tau"], profile["low"], profile["high"], color=colors[label], alpha=0.2)
    ax.set_xlabel(f"{score_name} (τ)")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.03, 1.03)  # a profile at 0 or 1 drawn inside the frame
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_iqm_curves(steps: np.ndarray, curves: Mapping[str, Mapping[str, np.ndarray]],
                    colors: Mapping[str, Any], path: Path, *, xlabel: str, score_name: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, curve in curves.items():
        ax.plot(steps, curve["value"], color=colors[label], label=label, linewidth=2, marker="o",
                markersize=3)
        ax.fill_between(steps, curve["low"], curve["high"], color=colors[label], alpha=0.2)
    ax.set_xlabel(xlabel)
    _compact_x(ax)
    ax.set_ylabel(f"IQM {score_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_replay_ratio_scaling(series: Mapping[str, Sequence[tuple[float, Mapping[str, float]]]], path: Path,
                              score_name: str) -> Path:
    """One line per preset: the aggregate estimate at each replay ratio with its CI as error bars."""
    plt = _pyplot()
    colors = label_colors(list(series))
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for preset, points in series.items():
        ratios = np.array([ratio for ratio, _ in points])
        value = np.array([est["value"] for _, est in points])
        low = np.array([est["low"] for _, est in points])
        high = np.array([est["high"] for _, est in points])
        ax.errorbar(ratios, value, yerr=[value - low, high - value], color=colors[preset], label=preset,
                    marker="o", capsize=4, linewidth=2)
    ax.set_xscale("log", base=2)
    all_ratios = sorted({ratio for points in series.values() for ratio, _ in points})
    ax.set_xticks(all_ratios, [f"{r:g}" for r in all_ratios])
    ax.set_xlabel("replay ratio (updates per agent step)")
    ax.set_ylabel(f"IQM {score_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_learning_curves(curves: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]], labels: Sequence[str],
                         colors: Mapping[str, Any], path: Path, *, xlabel: str, ylabels: Mapping[str, str],
                         columns: int = 4,
                         markers: Mapping[str, Mapping[str, Sequence[float]]] | None = None) -> Path:
    """``curves[game][label] = {"x", "mean", "low", "high", "seeds"}``: one panel per game;
    ``markers[game][label]``: x positions drawn as dotted vertical lines in the label's colour."""
    plt = _pyplot()
    games = list(curves)
    columns = min(columns, len(games))
    rows = math.ceil(len(games) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.8 * rows), squeeze=False)
    for ax, game in zip(axes.flat, games):
        for label in labels:
            curve = curves[game].get(label)
            if curve is None:
                continue
            ax.plot(curve["x"], curve["mean"], color=colors[label], linewidth=1.6,
                    label=f"{label} (n={curve['seeds']})")
            ax.fill_between(curve["x"], curve["low"], curve["high"], color=colors[label], alpha=0.2)
            for x in (markers or {}).get(game, {}).get(label, ()):
                ax.axvline(x, color=colors[label], linestyle=":", linewidth=0.9, alpha=0.7)
        ax.set_title(game, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        _compact_x(ax)
        ax.set_ylabel(ylabels.get(game, "score"), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(games):]:
        ax.axis("off")
    handles, names = [], []
    for ax in axes.flat:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            if name.split(" (n=")[0] not in [n.split(" (n=")[0] for n in names]:
                handles.append(handle)
                names.append(name.split(" (n=")[0])
    fig.legend(handles, names, loc="upper center", ncol=min(len(names), 4), fontsize=9,
               bbox_to_anchor=(0.5, 1.0 + 0.04 / rows))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.06 / rows))
    return _save(fig, path)
