"""All methods × both tasks × seeds, in parallel over CPU cores, then a table and figures.

Layout of a grid directory::

    OUT/{task}/{method}/seed_{seed}/  config.json, metrics.csv, summary.json   (one run each)
    OUT/results.md        Markdown table: final and mean test accuracy, mean ± std over seeds
    OUT/results.json      the same numbers, machine-readable
    OUT/final_accuracy.png  final test accuracy per method, both tasks (like the paper's Fig. 2)
    OUT/accuracy_curves.png test accuracy over chunks, mean ± std over seeds, both tasks
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from plastic.synthetic.artifacts import atomic_write_text, read_csv, read_json, write_json
from plastic.synthetic.data import ImageDataset, load_dataset
from plastic.synthetic.experiment import SyntheticConfig, run_synthetic
from plastic.synthetic.models import METHODS, get_method
from plastic.synthetic.tasks import TASKS, check_task

# The paper's CIFAR-10 test accuracies (%, read off its Fig. 2). "plastic" is only
# reported as "above 70" there.
PAPER_ACCURACY = {
    "input": {"vanilla": 55.5, "ln": 64.0, "sam": 65.0, "crelu": 54.9, "reset": 54.9},
    "label": {"vanilla": 67.2, "ln": 67.15, "sam": 67.5, "crelu": 68.25, "reset": 69.0},
}

_worker_datasets: dict[tuple[str, str | None], ImageDataset] = {}


def run_dir(out_dir: str | Path, task: str, method: str, seed: int) -> Path:
    return Path(out_dir) / task / method / f"seed_{seed}"


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker; the pool provides the parallelism


def _run_job(job: tuple[dict[str, Any], str]) -> dict[str, Any]:
    config_dict, out = job
    config = SyntheticConfig(**config_dict)
    key = (config.dataset, config.data_dir)
    if key not in _worker_datasets:  # each worker loads the data once
        _worker_datasets[key] = load_dataset(config.dataset, config.data_dir, verbose=False)
    summary = run_synthetic(config, out, dataset=_worker_datasets[key], verbose=True)  # a line per chunk
    status = "skipped (finished)" if summary["skipped"] else f"{summary['wall_time_s']:.0f} s"
    print(
        f"[grid] {config.task}/{config.method} seed {config.seed}: final acc "
        f"{summary['final_test_acc']:.4f}, mean acc {summary['mean_test_acc']:.4f} ({status})",
        flush=True,
    )
    return summary


def make_jobs(
    base: SyntheticConfig,
    out_dir: str | Path,
    methods: Sequence[str],
    tasks: Sequence[str],
    seeds: Sequence[int],
) -> list[tuple[dict[str, Any], str]]:
    for method in methods:
        get_method(method)
    for task in tasks:
        check_task(task)
    jobs = []
    # Seeds outermost: with fewer workers than jobs, every method gets its first seed early.
    for seed in seeds:
        for task in tasks:
            for method in methods:
                config = replace(base, task=task, method=method, seed=seed)
                jobs.append((asdict(config), str(run_dir(out_dir, task, method, seed))))
    return jobs


def run_grid(
    out_dir: str | Path,
    base: SyntheticConfig,
    methods: Sequence[str] = tuple(METHODS),
    tasks: Sequence[str] = TASKS,
    seeds: Sequence[int] = (0, 1, 2),
    workers: int | None = None,
    download: bool = True,
) -> list[dict[str, Any]]:
    """Run every (task, method, seed) not yet finished under ``out_dir``; then write the report."""
    out_dir = Path(out_dir)
    make_jobs(base, out_dir, methods, tasks, seeds)  # validates names before loading any data
    # Resolve "auto" once and say which dataset the grid uses (workers load it silently).
    dataset = load_dataset(base.dataset, base.data_dir, download=download, verbose=True)
    base = replace(base, dataset=dataset.name)
    jobs = make_jobs(base, out_dir, methods, tasks, seeds)
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    print(f"[grid] {len(jobs)} runs on {workers} worker(s) -> {out_dir}", flush=True)
    started = time.perf_counter()
    if workers == 1:
        _worker_datasets[(dataset.name, base.data_dir)] = dataset
        summaries = [_run_job(job) for job in jobs]
    else:
        # spawn, not fork: a forked child of a process that already used torch's thread pool
        # can deadlock.
        with mp.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            summaries = pool.map(_run_job, jobs, chunksize=1)
    print(f"[grid] done in {time.perf_counter() - started:.0f} s", flush=True)
    write_report(out_dir)
    return summaries


# ----------------------------------------------------------------------------------------------
# Report


def collect(out_dir: str | Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{task: {method: [run, ...]}} of every finished run under ``out_dir``; a run has its
    summary and its per-chunk test accuracies (``curve``)."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for summary_path in sorted(Path(out_dir).glob("*/*/seed_*/summary.json")):
        summary = read_json(summary_path)
        rows = read_csv(summary_path.parent / "metrics.csv")
        summary["curve"] = [float(r["test_acc"]) for r in rows]
        runs.setdefault(summary["task"], {}).setdefault(summary["method"], []).append(summary)
    return runs


def _ordered(names: Sequence[str]) -> list[str]:
    known = [m for m in METHODS if m in names]
    return known + sorted(n for n in names if n not in METHODS)


def aggregate(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for task, by_method in runs.items():
        table[task] = {}
        for method in _ordered(list(by_method)):
            finals = np.array([r["final_test_acc"] for r in by_method[method]])
            means = np.array([r["mean_test_acc"] for r in by_method[method]])
            table[task][method] = {
                "seeds": sorted(r["seed"] for r in by_method[method]),
                "final_acc_mean": float(finals.mean()),
                "final_acc_std": float(finals.std(ddof=1)) if len(finals) > 1 else 0.0,
                "mean_acc_mean": float(means.mean()),
                "mean_acc_std": float(means.std(ddof=1)) if len(means) > 1 else 0.0,
                "active_backbone": float(np.mean([r["final_active_backbone"] for r in by_method[method]])),
                "active_head": float(np.mean([r["final_active_head"] for r in by_method[method]])),
            }
    return table


def _mean_std(mean: float, std: float, n: int) -> str:
    """Percent, with the spread over seeds when there is more than one."""
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if n > 1 else f"{100 * mean:.1f}"


def markdown_table(table: dict[str, Any], runs: dict[str, Any]) -> str:
    lines = []
    for task in [t for t in TASKS if t in table]:
        sample = next(iter(runs[task].values()))[0]
        fidelity = f", fidelity {sample['fidelity']}" if "fidelity" in sample else ""  # older runs: none
        lines.append(
            f"### {task} adaptation ({sample['dataset']}, {sample['chunks']} chunks × "
            f"{sample['iters_per_chunk']} iterations{fidelity})\n"
        )
        lines.append(
            "| method | final test acc (%) | mean test acc over chunks (%) | Δ final vs vanilla "
            "| active units backbone / head (final) | seeds | paper, CIFAR-10 (%) |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        vanilla = table[task].get("vanilla", {}).get("final_acc_mean")
        for method, row in table[task].items():
            delta = f"{100 * (row['final_acc_mean'] - vanilla):+.1f}" if vanilla is not None else "–"
            paper = PAPER_ACCURACY.get(task, {}).get(method)
            paper_text = f"{paper:.1f}" if paper is not None else (">70" if method == "plastic" else "–")
            final = _mean_std(row["final_acc_mean"], row["final_acc_std"], len(row["seeds"]))
            mean = _mean_std(row["mean_acc_mean"], row["mean_acc_std"], len(row["seeds"]))
            lines.append(
                f"| {method} | {final} | {mean} | {delta} "
                f"| {row['active_backbone']:.2f} / {row['active_head']:.2f} "
                f"| {len(row['seeds'])} | {paper_text} |"
            )
        lines.append("")
    lines.append("Mean ± sample standard deviation over seeds (no ± with a single seed).")
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, Any], table: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if t in table]
    colors = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(METHODS)}
    paths = []

    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        methods = list(table[task])
        means = [100 * table[task][m]["final_acc_mean"] for m in methods]
        stds = [100 * table[task][m]["final_acc_std"] for m in methods]
        ax.bar(methods, means, yerr=stds, capsize=4, color=[colors.get(m, "gray") for m in methods])
        low = min(m - s for m, s in zip(means, stds, strict=True))
        high = max(m + s for m, s in zip(means, stds, strict=True))
        pad = max(1.0, 0.15 * (high - low))
        ax.set_ylim(max(0.0, low - pad), min(100.0, high + pad))
        sample = next(iter(runs[task].values()))[0]
        n_seeds = max(len(table[task][m]["seeds"]) for m in methods)
        ax.set_title(f"{task.capitalize()} adaptation ({sample['dataset']}, {n_seeds} seeds)")
        ax.set_ylabel("final test accuracy (%)")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    paths.append(out_dir / "final_accuracy.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for method in table[task]:
            curves = np.array([r["curve"] for r in runs[task][method]]) * 100
            mean, std = curves.mean(0), curves.std(0)
            x = np.arange(1, curves.shape[1] + 1)
            ax.plot(x, mean, label=method, color=colors.get(method, "gray"), lw=1.4)
            ax.fill_between(x, mean - std, mean + std, color=colors.get(method, "gray"), alpha=0.15)
        ax.set_title(f"{task.capitalize()} adaptation")
        ax.set_xlabel("chunk")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "accuracy_curves.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def write_report(out_dir: str | Path) -> dict[str, Any]:
    """Table (results.md, results.json) and figures of every finished run under ``out_dir``."""
    out_dir = Path(out_dir)
    runs = collect(out_dir)
    if not runs:
        raise ValueError(f"no finished runs (*/*/seed_*/summary.json) under {out_dir}")
    table = aggregate(runs)
    markdown = markdown_table(table, runs)
    atomic_write_text(out_dir / "results.md", markdown)
    write_json(out_dir / "results.json", table)
    plot(runs, table, out_dir)
    print(markdown, flush=True)
    return table
