"""The figures a finished run's row in a benchmarks/ README needs, read from its artifacts.

    python benchmarks/run_digest.py benchmarks/atari100k/rr2/breakout/plastic/seed0 [RUN_DIR ...]
    python benchmarks/run_digest.py --window 5000 RUN_DIR      # training means per 5k steps
    python benchmarks/run_digest.py --row RUN_DIR              # and its README table row

For each finished run (a directory with ``summary.json``): the final score with its spread, the
human-normalised score where there is one, the time breakdown in wall-clock and, for runs that
record it, CPU seconds (milliseconds per update from each), the Resets, the training games (how
many, the longest, where the last one ended: a game still going at the end is a stalled agent's
sign on Breakout), the mean training return per window of steps, and the commits that trained it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from plastic.experiments.report import code_text
from plastic.humanize import duration_text
from plastic.train.logger import read_csv

TIME_ORDER = ("updates", "acting", "evaluation", "checkpoints", "plasticity_metrics", "other")


def time_text(breakdown: dict[str, float], updates: int) -> str:
    """``6.1 h (21,890 s: 21,346 s updates — 109 ms each over 196,000 —, 430 s acting, ...)``."""
    total = breakdown.get("total", 0.0)
    parts = []
    for part in TIME_ORDER:
        seconds = breakdown.get(part, 0.0)
        if seconds < 0.5 and part != "updates":
            continue
        text = f"{seconds:,.0f} s {part.replace('_', ' ')}"
        if part == "updates" and updates:
            text += f" — {1000 * seconds / updates:.0f} ms each over {updates:,} —"
        parts.append(text)
    return f"{duration_text(total)} ({total:,.0f} s: {', '.join(parts)})"


def window_means(episodes: list[dict[str, float]], window: int) -> list[tuple[int, float, int]]:
    """(window start, mean return, games) of the training games that ended in each window of
    ``window`` steps, for every window with a game."""
    found: dict[int, list[float]] = {}
    for game in episodes:
        start = int((game["step"] - 1) // window) * window  # a game ending at step 10,000 is in 0-10k
        found.setdefault(start, []).append(game["return"])
    return [(start, sum(returns) / len(returns), len(returns)) for start, returns in sorted(found.items())]


def digest(run_dir: Path, window: int = 10_000) -> dict[str, Any]:
    summary = json.loads((run_dir / "summary.json").read_text())
    episodes_csv = run_dir / "episodes.csv"
    episodes = read_csv(episodes_csv) if episodes_csv.exists() else []
    updates = int(summary.get("updates", 0))
    return {
        "run": f"{summary.get('game')}/{summary.get('preset')}/seed{summary.get('seed')}",
        "score": summary["score"], "score_std": summary.get("score_std"),
        "games": summary.get("episodes"),
        "human_normalized_score": summary.get("human_normalized_score"),
        "longest_evaluation_game": summary.get("game_length_max"),
        "steps": summary.get("steps"), "updates": updates, "resets": summary.get("resets"),
        "wall": time_text(summary["time"], updates) if "time" in summary else None,
        "cpu": time_text(summary["cpu_time"], updates) if "cpu_time" in summary else None,
        "training_games": len(episodes),
        "longest_training_game": int(max((g["length"] for g in episodes), default=0)),
        "last_game_end": int(episodes[-1]["step"]) if episodes else None,
        "window": window, "windows": window_means(episodes, window),
        "code": code_text(summary.get("provenance")),
    }


def digest_text(result: dict[str, Any]) -> str:
    std, window = result["score_std"], result["window"]
    lines = [result["run"],
             f"  final score: {result['score']:.2f}" + (f" ± {std:.2f} (std)" if std is not None else "")
             + f" over {result['games']} games"
             + (f"; HNS {result['human_normalized_score']:.3f}"
                if result["human_normalized_score"] is not None else "")
             + (f"; longest evaluation game {result['longest_evaluation_game']:,} steps"
                if result["longest_evaluation_game"] else "")]
    if result["wall"]:
        lines.append(f"  wall time: {result['wall']}")
    if result["cpu"]:
        lines.append(f"  CPU time:  {result['cpu']}")
    lines.append(f"  resets: {result['resets']}; code: {result['code'] or 'not recorded'}")
    if result["training_games"]:
        lines.append(f"  training games: {result['training_games']}, the longest "
                     f"{result['longest_training_game']:,} steps, the last ending at step "
                     f"{result['last_game_end']:,} of {result['steps']:,}")
        means = "; ".join(f"{start // 1000}k–{(start + window) // 1000}k {mean:.2f} ({games})"
                          for start, mean, games in result["windows"])
        lines.append(f"  training return per {window // 1000}k steps (games): {means}")
    return "\n".join(lines)


def table_row(result: dict[str, Any]) -> str:
    """The run's row of the ratio-2 table in benchmarks/atari100k/README.md (game, preset, seed,
    final score, HNS, wall time with CPU time, commit, machine); the machine is left to fill in."""
    game, preset, seed = result["run"].split("/")
    std = f" ± {result['score_std']:.2f} (std)" if result["score_std"] is not None else ""
    hns = f"{result['human_normalized_score']:.3f}" if result["human_normalized_score"] is not None else ""
    duration = result["wall"] or ""
    if result["cpu"]:
        duration += f"; CPU time {result['cpu']}"
    return (f"| {game} | {preset} | {seed.removeprefix('seed')} | {result['score']:.2f}{std} | {hns} | "
            f"{duration} | {result['code']} | MACHINE |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--window", type=int, default=10_000, help="steps per training-return window")
    parser.add_argument("--row", action="store_true", help="also the run's README table row")
    args = parser.parse_args(argv)
    if args.window < 1000 or args.window % 1000:
        parser.error(f"--window must be a positive multiple of 1000, got {args.window}")
    status = 0
    for run_dir in args.runs:
        if not (run_dir / "summary.json").is_file():
            print(f"{run_dir}: no summary.json (not a finished run)", file=sys.stderr)
            status = 1
            continue
        result = digest(run_dir, args.window)
        print(digest_text(result))
        if args.row:
            print(table_row(result))
    return status


if __name__ == "__main__":
    sys.exit(main())
