"""Set a run of the authors' own agent (``authors_atari_run.py``) beside our runs of the same game.

Prints, as a markdown table, the mean score of the training games that ended in each window of
agent steps (the authors' run from its JSON, or, for a run still going or cut short, from its
``.train-games.jsonl``; ours from each run directory's ``episodes.csv``), then each run's final
100-game evaluation and where it falls among the published DrQ(ε) runs of that game (percentile,
``plastic.experiments.stats.percentile_among``).

    python benchmarks/compare_authors_run.py /work/authors-runs/pong-rr1-seed0.json \\
        benchmarks/atari100k/drq-rr1/pong/drq/seed0 benchmarks/atari100k/drq-rr1/pong/drq/seed1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from plastic.data import published_baseline
from plastic.envs.scores import camel_to_snake
from plastic.experiments.stats import percentile_among
from plastic.train.logger import read_csv


def authors_games(path: Path) -> tuple[str, list[tuple[int, float]], float | None]:
    """(game, [(step, score) of each training game], final score or None) of an authors' run."""
    if path.suffix == ".json":
        result = json.loads(path.read_text())
        return result["game"], [tuple(g) for g in result["train_games"]], result["final_score"]
    games = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return "", [(g["step"], g["score"]) for g in games], None


def our_games(run_dir: Path) -> tuple[str, list[tuple[int, float]], float | None]:
    config = json.loads((run_dir / "config.json").read_text())
    games = [(int(r["step"]), float(r["return"])) for r in read_csv(run_dir / "episodes.csv")]
    summary = run_dir / "summary.json"
    final = json.loads(summary.read_text())["score"] if summary.exists() else None
    return config["game"], games, final


def window_means(games: list[tuple[int, float]], window: int, steps: int) -> list[str]:
    cells = []
    for start in range(0, steps, window):
        scores = [score for step, score in games if start < step <= start + window]
        cells.append(f"{np.mean(scores):.2f} ({len(scores)})" if scores else "–")
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("authors", type=Path, help="authors_atari_run.py's JSON, or its .train-games.jsonl")
    parser.add_argument("ours", type=Path, nargs="+", help="our run directories of the same game")
    parser.add_argument("--window", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args(argv)
    runs = [("authors' code", *authors_games(args.authors))]
    runs += [(f"ours, seed {json.loads((d / 'config.json').read_text())['seed']}", *our_games(d))
             for d in args.ours]
    game = next(g for _, g, _, _ in runs[1:])
    windows = [f"{s // 1000}–{(s + args.window) // 1000}k" for s in range(0, args.steps, args.window)]
    baseline = published_baseline("drq-eps")
    assert baseline is not None
    published = np.asarray({camel_to_snake(g): runs for g, runs in baseline.read().items()}[game])
    print(f"{game}: mean score of the training games ending in each window (games in brackets)\n")
    print("| run | " + " | ".join(windows) + " | final (100 games) | DrQ(ε) percentile |")
    print("|---|" + "---|" * (len(windows) + 2))
    for name, _, games, final in runs:
        end = "– | –" if final is None else f"{final:.2f} | {percentile_among(published, final):.0f}"
        print(f"| {name} | " + " | ".join(window_means(games, args.window, args.steps)) + f" | {end} |")
    print(f"\nDrQ(ε)'s {len(published)} published runs: median {np.median(published):.2f}, "
          f"min {published.min():.2f}, max {published.max():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
