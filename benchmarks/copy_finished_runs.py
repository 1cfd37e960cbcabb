"""Copy the small artifacts of every finished run of a sweep into the repository.

    python benchmarks/copy_finished_runs.py /work/evidence-runs/minatar-all benchmarks/minatar-all/runs

A run is finished when its directory holds ``summary.json``. Its CSVs, JSON files and logs are
copied (TensorBoard events, checkpoints and models are not: they are large and can be remade);
the sweep's own ``sweep.json`` and ``sweep_status.json`` come along, unless ``--runs-only`` (for
runs of another sweep merged into a directory that a sweep of its own fills: a GPU session's runs,
``scripts/device_checks.sh``, beside the CPU's evidence sweep). Unfinished runs are listed, not
copied. Re-running it refreshes the copies.

    tar -xzf grid.tar.gz -C /tmp/grid
    python benchmarks/copy_finished_runs.py --runs-only /tmp/grid/runs/device/atari100k-drq-rr1 \
        benchmarks/atari100k/drq-rr1
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

SMALL_SUFFIXES = {".csv", ".json", ".log", ".txt"}


def copy_finished_runs(source: Path, destination: Path, *,
                       sweep_files: bool = True) -> tuple[list[Path], list[Path]]:
    """(finished runs copied, unfinished run directories), both relative to ``source``."""
    copied, unfinished = [], []
    for config in sorted(source.rglob("config.json")):
        run = config.parent
        relative = run.relative_to(source)
        if not (run / "summary.json").exists():
            unfinished.append(relative)
            continue
        target = destination / relative
        target.mkdir(parents=True, exist_ok=True)
        for path in run.iterdir():
            if path.is_file() and path.suffix in SMALL_SUFFIXES:
                shutil.copy2(path, target / path.name)
        copied.append(relative)
    for name in ("sweep.json", "sweep_status.json") if sweep_files else ():
        if (source / name).exists():
            destination.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, destination / name)
    return copied, unfinished


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="sweep directory (where the runs are)")
    parser.add_argument("destination", type=Path, help="where the small artifacts go")
    parser.add_argument("--runs-only", action="store_true",
                        help="copy the runs, not the sweep's sweep.json and sweep_status.json")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        print(f"copy_finished_runs: no directory {args.source}", file=sys.stderr)
        return 2
    copied, unfinished = copy_finished_runs(args.source, args.destination, sweep_files=not args.runs_only)
    print(f"copied {len(copied)} finished run(s) to {args.destination}")
    for run in unfinished:
        print(f"  not finished: {run}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
