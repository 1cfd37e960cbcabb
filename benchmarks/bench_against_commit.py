"""The learner update of this tree against the same update at another commit, in alternation.

Each round runs `plastic bench learner --no-reference` once in a process importing the other
commit's code (a temporary git worktree) and once importing this tree's, in alternating order,
so that a change in the machine's load hits both; the figures are medians of process CPU time.
Each tree is timed by its own runner: its `benchmarks/bench_learner.py`, or, in a tree from
before that script existed, its `python -m plastic.bench.cli learner`; `PYTHONPATH` is the
tree's `src`, so the `plastic` imported is that tree's.

    python benchmarks/bench_against_commit.py --rev HEAD --preset plastic --suite atari --runs 5
    python benchmarks/bench_against_commit.py --rev HEAD --preset drq --set train.precision=bf16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench_once(tree: Path, args: argparse.Namespace) -> dict:
    runner = tree / "benchmarks" / "bench_learner.py"
    command = [sys.executable, str(runner)] if runner.is_file() else [
        sys.executable, "-m", "plastic.bench.cli", "learner"]  # older trees: plastic.bench in src
    command += ["--no-reference", "--preset", args.preset, "--suite", args.suite,
                "--threads", str(args.threads), "--rounds", str(args.rounds),
                "--per-round", str(args.per_round)]
    command += [option for assignment in args.set for option in ("--set", assignment)]
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", default="HEAD", help="the commit to compare against")
    parser.add_argument("--preset", default="plastic")
    parser.add_argument("--suite", default="atari", choices=["atari", "minatar"])
    parser.add_argument("--runs", type=int, default=5, help="processes per tree")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=3)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                        help="a config override for both trees, e.g. --set train.precision=bf16 (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.rev],
                       check=True, capture_output=True)
        try:
            trees = {"before": worktree, "after": ROOT}
            cpu: dict[str, list[float]] = {name: [] for name in trees}
            for run in range(args.runs):
                for name in trees if run % 2 == 0 else reversed(list(trees)):
                    cpu[name].append(bench_once(trees[name], args)["cpu_ms_per_update"])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                           check=False, capture_output=True)
    before, after = statistics.median(cpu["before"]), statistics.median(cpu["after"])
    print(json.dumps({
        "preset": args.preset, "suite": args.suite, "rev": args.rev, "runs": args.runs, "set": args.set,
        "before_cpu_ms": round(before, 2), "after_cpu_ms": round(after, 2),
        "before_min": round(min(cpu["before"]), 2), "after_min": round(min(cpu["after"]), 2),
        "gain": round(before / after, 3), "loadavg_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
