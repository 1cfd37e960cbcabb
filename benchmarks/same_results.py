"""Do two commits compute the same runs? Short real runs from each, compared bit for bit.

Before a long run that began at one commit is resumed by another (the evidence worktree of
``scripts/evidence.sh`` moved to newer code), check that the two compute the same thing: each case
trains a short run (learning, Resets, evaluation) once with each commit's code, and the
``resume`` cases train a run with the old commit, then extend it from its final checkpoint with
each commit, so that the new code also reads the old code's checkpoint the same way. Compared: every
tensor of ``final_model.pt``, the rows of ``train.csv`` without its speed columns,
``episodes.csv``, ``eval.csv``, ``resets.csv`` and the final evaluation's returns.

    python benchmarks/same_results.py --old 50739a6                 # against this tree
    python benchmarks/same_results.py --old 50739a6 --cases minatar-plastic-bf16,resume-atari-plastic

Each commit's code is imported from its ``src`` (``PYTHONPATH``; the other commit is checked out
into a temporary git worktree). Runs go to ``--out`` (default a temporary directory). Exit status 1
if any case differs. The Atari cases take a few minutes each on one core.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SPEED_COLUMNS = {"steps_per_s", "updates_per_s"}
COMPARED_FILES = ("train.csv", "episodes.csv", "eval.csv", "resets.csv")


@dataclass(frozen=True)
class Case:
    suite: str
    game: str
    preset: str
    precision: str
    steps: int
    settings: tuple[str, ...]
    resume_from: int = 0  # > 0: the old commit trains to this step, then each commit extends the run


_ATARI = ("train.learning_starts=1000",)
CASES = {
    "atari-drq": Case("atari", "breakout", "drq", "fp32", 1400, _ATARI),
    "atari-plastic": Case("atari", "breakout", "plastic", "fp32", 1400, (*_ATARI, "reset.interval=300")),
    "minatar-drq": Case("minatar", "seaquest", "drq", "fp32", 3000, ()),
    "minatar-plastic": Case("minatar", "seaquest", "plastic", "fp32", 3000, ("reset.interval=1500",)),
    "minatar-drq-bf16": Case("minatar", "seaquest", "drq", "bf16", 3000, ()),
    "minatar-plastic-bf16": Case("minatar", "seaquest", "plastic", "bf16", 3000, ("reset.interval=1500",)),
    "resume-atari-plastic": Case("atari", "breakout", "plastic", "fp32", 1500,
                                 (*_ATARI, "reset.interval=300", "train.checkpoint_interval=600"), 1200),
    "resume-minatar-plastic-bf16": Case("minatar", "seaquest", "plastic", "bf16", 4000,
                                        ("reset.interval=1500", "train.checkpoint_interval=500"), 2500),
}


def train(src: Path, case: Case, steps: int, run_dir: Path) -> None:
    """``plastic train`` with ``src``'s code: replay ratio 2, seed 5, a 4-episode final evaluation."""
    settings = [*case.settings, f"train.precision={case.precision}", "train.eval_episodes=4",
                "train.eval_envs=2", "train.keep_final_checkpoint=true"]
    command = [sys.executable, "-m", "plastic.cli", "train", case.suite, "--game", case.game,
               "--preset", case.preset, "--seed", "5", "--replay-ratio", "2", "--steps", str(steps),
               "--run-dir", str(run_dir), "--no-progress"]
    command += [option for setting in settings for option in ("--set", setting)]
    # cwd: `python -m` puts the working directory first on sys.path, where a checkout's plastic
    # could shadow PYTHONPATH's
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(src)}, cwd=run_dir.parent,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with PYTHONPATH={src}:\n{done.stderr[-2000:]}")


def _tensors(value: object, name: str = "") -> dict[str, torch.Tensor]:
    if torch.is_tensor(value):
        return {name: value}
    found: dict[str, torch.Tensor] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            found.update(_tensors(item, f"{name}.{key}" if name else str(key)))
    return found


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bytes (``torch.equal`` would call 0.0 and -0.0, or a bf16 and an fp32
    tensor of the same values, equal, and NaN unequal to itself)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    def raw(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.reshape(-1).contiguous().view(torch.uint8)

    return torch.equal(raw(a), raw(b))


def _rows(path: Path) -> list[dict[str, str]] | None:
    if not path.exists():
        return None
    with path.open(newline="") as file:
        return [{k: v for k, v in row.items() if k not in SPEED_COLUMNS} for row in csv.DictReader(file)]


def _shared_columns(rows_a: list[dict[str, str]] | None,
                    rows_b: list[dict[str, str]] | None) -> tuple[list[dict[str, str]] | None, ...]:
    """Both files' rows cut to the columns both write: a column that only one version logs (a new
    metric, or one a resumed run's newer code added to an older file) says nothing about the bits."""
    if not rows_a or not rows_b:
        return rows_a, rows_b
    shared = rows_a[0].keys() & rows_b[0].keys()
    return tuple([{k: v for k, v in row.items() if k in shared} for row in rows] for rows in (rows_a, rows_b))


def differences(a: Path, b: Path) -> list[str]:
    """What differs between two finished run directories (empty: the same bits)."""
    found = []
    weights_a = _tensors(torch.load(a / "final_model.pt", map_location="cpu", weights_only=False))
    weights_b = _tensors(torch.load(b / "final_model.pt", map_location="cpu", weights_only=False))
    if weights_a.keys() != weights_b.keys():
        found.append("final_model.pt holds other tensors")
    found += [f"final_model.pt: {name}" for name in weights_a
              if name in weights_b and not same_bits(weights_a[name], weights_b[name])]
    for name in COMPARED_FILES:
        rows_a, rows_b = _shared_columns(_rows(a / name), _rows(b / name))
        if rows_a != rows_b:
            found.append(name)
    summaries = [json.loads((run / "summary.json").read_text()) for run in (a, b)]
    if summaries[0]["returns"] != summaries[1]["returns"]:
        found.append("the final evaluation's returns")
    lengths = [summary.get("lengths") for summary in summaries]  # absent before 5c3aaa6
    if None not in lengths and lengths[0] != lengths[1]:
        found.append("the final evaluation's game lengths")
    return found


def run_case(name: str, case: Case, old: Path, new: Path, out: Path) -> list[str]:
    old_dir, new_dir = out / f"{name}-old", out / f"{name}-new"
    for directory in (old_dir, new_dir):
        shutil.rmtree(directory, ignore_errors=True)
    if case.resume_from:
        train(old, case, case.resume_from, old_dir)
        shutil.copytree(old_dir, new_dir)
    for src, run_dir in ((old, old_dir), (new, new_dir)):
        train(src, case, case.steps, run_dir)
    return differences(old_dir, new_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the commit the runs began at")
    parser.add_argument("--new", type=Path, default=ROOT,
                        help="the checkout whose code would resume them (default: this tree)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from: {', '.join(CASES)}")
    parser.add_argument("--out", type=Path, help="where the runs go (default: a temporary directory)")
    args = parser.parse_args(argv)
    names = [name for name in args.cases.split(",") if name]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; valid: {', '.join(CASES)}")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "runs"
        worktree = Path(tmp) / "old"
        added = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree),
                                args.old], capture_output=True, text=True)
        if added.returncode != 0:
            print(f"same_results: cannot check out {args.old}: {added.stderr.strip()}", file=sys.stderr)
            return 2
        try:
            differing = 0
            for name in names:
                found = run_case(name, CASES[name], worktree / "src", args.new / "src", out)
                differing += bool(found)
                verdict = "same bits" if not found else "DIFFERS: " + ", ".join(found[:6])
                print(f"{name}: {verdict}", flush=True)
        finally:
            for cleanup in (["worktree", "remove", "--force", str(worktree)], ["worktree", "prune"]):
                subprocess.run(["git", "-C", str(ROOT), *cleanup], check=False, capture_output=True)
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
