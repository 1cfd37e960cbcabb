"""benchmarks/same_results.py's comparison of two run directories (the runs themselves are real
training; here two hand-made directories that differ in one place at a time)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from script_module import load_script

_MODULE = load_script("benchmarks/same_results.py")  # registered: its dataclass looks it up
differences, main = _MODULE.differences, _MODULE.main


def make_run(run_dir: Path, *, pace: float = 10.0) -> Path:
    run_dir.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save({"online": {"w": torch.randn(3, 4), "b": torch.zeros(3)}, "target": {"w": torch.ones(2)}},
               run_dir / "final_model.pt")
    (run_dir / "train.csv").write_text(f"step,updates,steps_per_s,updates_per_s,loss\n"
                                       f"100,200,{pace},{2 * pace},0.5\n")
    (run_dir / "episodes.csv").write_text("step,episode,return\n50,1,3.0\n")
    (run_dir / "summary.json").write_text(json.dumps({"returns": [1.0, 2.0]}))
    return run_dir


def test_the_same_run_at_another_speed_is_the_same(tmp_path):
    assert differences(make_run(tmp_path / "a"), make_run(tmp_path / "b", pace=3.0)) == []


def test_each_difference_is_named(tmp_path):
    a = make_run(tmp_path / "a")
    cases = {
        "final_model.pt: online.w": lambda b: torch.save(
            {"online": {"w": torch.randn(3, 4), "b": torch.zeros(3)}, "target": {"w": torch.ones(2)}},
            b / "final_model.pt"),
        "final_model.pt holds other tensors": lambda b: torch.save({"online": {"w": torch.ones(1)}},
                                                                   b / "final_model.pt"),
        "train.csv": lambda b: (b / "train.csv").write_text(
            "step,updates,steps_per_s,updates_per_s,loss\n100,200,10.0,20.0,0.50000001\n"),
        "episodes.csv": lambda b: (b / "episodes.csv").write_text("step,episode,return\n51,1,3.0\n"),
        "resets.csv": lambda b: (b / "resets.csv").write_text("step,updates\n10,20\n"),
        "the final evaluation's returns": lambda b: (b / "summary.json").write_text(
            json.dumps({"returns": [1.0, 2.5]})),
        "the final evaluation's game lengths": lambda b: [(run / "summary.json").write_text(
            json.dumps({"returns": [1.0, 2.0], "lengths": [7, n]})) for run, n in ((a, 8), (b, 9))],
    }
    for expected, change in cases.items():
        b = tmp_path / "b"
        for run in (a, b):
            shutil.rmtree(run, ignore_errors=True)
            make_run(run)
        change(b)
        found = differences(a, b)
        assert expected in found, (expected, found)
        assert len(found) == 1 or expected == "final_model.pt holds other tensors", found


def test_a_column_only_one_version_logs_is_not_a_difference(tmp_path):
    # the newer version logs a metric the older did not: into its own file, or (a resumed run)
    # into the older file, whose earlier rows it leaves empty there
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    (a / "eval.csv").write_text("step,score\n100,3.5\n200,4.0\n")
    (b / "eval.csv").write_text("step,score,game_length_max\n100,3.5,\n200,4.0,812\n")
    (a / "summary.json").write_text(json.dumps({"returns": [1.0, 2.0]}))
    (b / "summary.json").write_text(json.dumps({"returns": [1.0, 2.0], "lengths": [7, 9]}))
    assert differences(a, b) == []
    (b / "eval.csv").write_text("step,score,game_length_max\n100,3.5,\n200,4.5,812\n")
    assert differences(a, b) == ["eval.csv"]  # a shared column still counts


def test_an_unknown_case_names_the_valid_ones(capsys):
    with pytest.raises(SystemExit):
        main(["--old", "HEAD", "--cases", "atari-drq,pong"])
    err = capsys.readouterr().err
    assert "unknown case(s) pong" in err and "minatar-plastic-bf16" in err


def test_same_bits_means_dtype_shape_and_bytes():
    same_bits = _MODULE.same_bits
    assert same_bits(torch.tensor([1.0, -2.5]), torch.tensor([1.0, -2.5]))
    assert not same_bits(torch.tensor([0.0]), torch.tensor([-0.0]))  # torch.equal says equal
    assert not same_bits(torch.tensor([1.0]), torch.tensor([1.0], dtype=torch.bfloat16))
    assert not same_bits(torch.ones(2, 2), torch.ones(4))
    nan = torch.tensor([float("nan")])
    assert same_bits(nan, nan.clone()) and same_bits(torch.tensor(3), torch.tensor(3))


def test_a_run_is_trained_from_its_own_new_directory(tmp_path, monkeypatch):
    """`python -m` runs from the run's parent folder (not the caller's, where a checkout could
    shadow the commit under test), which must exist before the first run of a case is made."""
    seen = []

    def fake_run(command, *, env, cwd, **kwargs):
        seen.append((Path(cwd), Path(cwd).is_dir(), env["PYTHONPATH"], command))
        return type("Done", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(_MODULE.subprocess, "run", fake_run)
    run_dir = tmp_path / "runs" / "resume-atari-plastic" / "old"
    _MODULE.train(tmp_path / "old" / "src", _MODULE.CASES["resume-atari-plastic"], 1200, run_dir)
    (cwd, existed, pythonpath, command), = seen
    assert cwd == run_dir.parent and existed and pythonpath == str(tmp_path / "old" / "src")
    assert command[command.index("--run-dir") + 1] == str(run_dir) and "1200" in command
