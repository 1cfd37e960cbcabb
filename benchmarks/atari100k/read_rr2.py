"""The ratio-2 pairs read by the rule fixed in benchmarks/atari100k/README.md ("How the six runs
will be read"), before Boxing and MsPacman finished:

    python benchmarks/atari100k/read_rr2.py          # the committed runs of rr2/ and drq-rr1/

A game counts `plastic` ahead (or behind) only where its `plastic`-`drq` pair at ratio 2 differs by
more than the ratio-1 `drq` seeds of that game differ from each other (the spread of their final
scores); otherwise it is a tie. The rule was fixed with seeds 0 and 1, so those two set the
threshold even where later seeds of ratio 1 have finished. Over the games with a finished pair: "in
the paper's direction" if `plastic` is ahead on at least two and behind on none, "against it" if the
reverse, else "no sign either way". Games without a finished pair, or without ratio-1 seeds 0 and 1,
are listed as pending.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
THRESHOLD_SEEDS = (0, 1)  # the ratio-1 seeds the rule was written with


def final_scores(sweep: Path, preset: str) -> dict[str, dict[int, float]]:
    """{game: {seed: final score}} of the finished runs of ``preset`` under ``sweep``."""
    scores: dict[str, dict[int, float]] = {}
    for summary_path in sorted(sweep.glob(f"*/{preset}/seed*/summary.json")):
        summary = json.loads(summary_path.read_text())
        seed = int(summary_path.parent.name.removeprefix("seed"))
        scores.setdefault(summary_path.parents[2].name, {})[seed] = float(summary["score"])
    return scores


def planned_games(sweep: Path) -> list[str]:
    """The games the sweep's last command asks for (sweep.json), or none where it has no record."""
    from plastic.experiments.cli import planned_by_command

    try:
        record = json.loads((sweep / "sweep.json").read_text())
    except (OSError, ValueError):
        return []
    planned = planned_by_command(record.get("command") or [])
    return planned[0] if planned is not None else list(record.get("games") or [])


def read_pairs(rr2: Path, rr1: Path, seed: int = 0) -> dict:
    """Per game: the pair, the threshold and the verdict; and the reading over the games."""
    ratio1 = final_scores(rr1, "drq")
    drq, plastic = final_scores(rr2, "drq"), final_scores(rr2, "plastic")
    games, pending = {}, {}
    for game in sorted(set(drq) | set(plastic) | set(planned_games(rr2))):
        pair = (drq.get(game, {}).get(seed), plastic.get(game, {}).get(seed))
        seeds = sorted(score for s, score in ratio1.get(game, {}).items() if s in THRESHOLD_SEEDS)
        if None in pair:
            pending[game] = "no finished pair yet"
            continue
        if len(seeds) < 2:
            pending[game] = "ratio-1 drq seeds 0 and 1 not both finished, so no threshold"
            continue
        threshold = seeds[-1] - seeds[0]
        difference = pair[1] - pair[0]
        verdict = "ahead" if difference > threshold else "behind" if -difference > threshold else "tie"
        games[game] = {"drq": pair[0], "plastic": pair[1], "difference": difference,
                       "threshold": threshold, "verdict": verdict}
    ahead = sum(g["verdict"] == "ahead" for g in games.values())
    behind = sum(g["verdict"] == "behind" for g in games.values())
    if ahead >= 2 and behind == 0:
        reading = "in the paper's direction"
    elif behind >= 2 and ahead == 0:
        reading = "against it"
    else:
        reading = "no sign either way"
    return {"games": games, "pending": pending, "ahead": ahead, "behind": behind, "reading": reading}


def reading_text(result: dict) -> str:
    lines = ["| game | drq | plastic | plastic − drq | threshold (ratio-1 seed spread) | verdict |",
             "|---|---:|---:|---:|---:|---|"]
    for game, g in result["games"].items():
        lines.append(f"| {game} | {g['drq']:.2f} | {g['plastic']:.2f} | {g['difference']:+.2f} | "
                     f"{g['threshold']:.2f} | {g['verdict']} |")
    lines.append("")
    lines.extend(f"pending: {game} ({why})" for game, why in result["pending"].items())
    status = f"so far, {len(result['pending'])} game(s) pending" if result["pending"] else "final"
    lines.append(f"over {len(result['games'])} game(s): ahead {result['ahead']}, behind "
                 f"{result['behind']}: {result['reading']} ({status})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rr2", type=Path, default=HERE / "rr2", help="the ratio-2 runs")
    parser.add_argument("--rr1", type=Path, default=HERE / "drq-rr1", help="the ratio-1 drq runs")
    parser.add_argument("--seed", type=int, default=0, help="the ratio-2 seed to read")
    args = parser.parse_args(argv)
    for path in (args.rr2, args.rr1):
        if not path.is_dir():
            parser.error(f"no such directory: {path}")
    print(reading_text(read_pairs(args.rr2, args.rr1, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
