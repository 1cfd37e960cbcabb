"""benchmarks/copy_finished_runs.py: what goes into the repository from a sweep directory."""

from __future__ import annotations

import json
from pathlib import Path

from script_module import load_script

main = load_script("benchmarks/copy_finished_runs.py").main


def make_sweep(root: Path) -> None:
    root.mkdir()
    (root / "sweep.json").write_text(json.dumps({"from": "gpu"}))
    (root / "sweep_status.json").write_text("{}")
    finished = root / "pong" / "drq" / "seed1"
    finished.mkdir(parents=True)
    for name in ("config.json", "summary.json", "train.csv", "sweep.log"):
        (finished / name).write_text("x")
    (finished / "checkpoint.pt").write_bytes(b"big")
    (finished / "final_model.pt").write_bytes(b"big")
    (finished / "tb").mkdir()
    unfinished = root / "breakout" / "drq" / "seed1"
    unfinished.mkdir(parents=True)
    (unfinished / "config.json").write_text("x")


def test_finished_runs_small_files_only(tmp_path, capsys):
    make_sweep(tmp_path / "sweep")
    destination = tmp_path / "repo"
    assert main([str(tmp_path / "sweep"), str(destination)]) == 0
    run = destination / "pong" / "drq" / "seed1"
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "summary.json", "sweep.log", "train.csv"]
    assert not (destination / "breakout").exists()
    assert json.loads((destination / "sweep.json").read_text()) == {"from": "gpu"}
    assert (destination / "sweep_status.json").read_text() == "{}"  # the sweep's own files come along
    out = capsys.readouterr().out
    assert "copied 1 finished run(s)" in out and "not finished: breakout/drq/seed1" in out


def test_runs_only_keeps_the_destination_sweeps_own_files(tmp_path):
    make_sweep(tmp_path / "sweep")
    destination = tmp_path / "repo"
    destination.mkdir()
    (destination / "sweep.json").write_text(json.dumps({"from": "cpu"}))
    assert main(["--runs-only", str(tmp_path / "sweep"), str(destination)]) == 0
    assert (destination / "pong" / "drq" / "seed1" / "summary.json").exists()
    assert json.loads((destination / "sweep.json").read_text()) == {"from": "cpu"}
    assert not (destination / "sweep_status.json").exists()
