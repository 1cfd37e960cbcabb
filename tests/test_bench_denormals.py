"""benchmarks/bench_denormals.py: the share of subnormal optimizer state by hand, and the benchmark
on a real (tiny) run's checkpoint, which it reads and leaves as it was."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from plastic import runtime
from plastic.cli import main as plastic_main

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))  # as when run as a script: its `from harness import ...`
_SPEC = importlib.util.spec_from_file_location("bench_denormals", BENCHMARKS / "bench_denormals.py")
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench
_SPEC.loader.exec_module(bench)


def test_subnormal_share_of_the_optimizer_state_by_hand():
    weight = torch.nn.Parameter(torch.zeros(4))
    optimizer = torch.optim.Adam([weight])
    optimizer.state[weight] = {"step": torch.tensor(3.0),  # one element: not counted
                               "exp_avg": torch.tensor([1e-39, 0.0, 1.0, -2e-39]),
                               "exp_avg_sq": torch.tensor([1e-30, 5e-40, 0.0, 2e-38])}
    # subnormal: 1e-39, -2e-39, 5e-40 (0 is not; 1e-30 and 2e-38 are normal floats): 3 of 8
    assert bench.subnormal_fraction(optimizer) == 3 / 8


def test_the_benchmark_times_a_runs_checkpoint_without_writing_it(tmp_path):
    run = tmp_path / "run"
    assert plastic_main(["train", "minatar", "--game", "breakout", "--preset", "drq", "--steps", "300",
                         "--run-dir", str(run), "--no-progress", "--set", "train.learning_starts=100",
                         "--set", "train.eval_episodes=2", "--set", "train.eval_envs=2",
                         "--set", "train.keep_final_checkpoint=true"]) == 0
    files = {path: path.stat().st_mtime_ns for path in run.rglob("*")}
    result = bench.bench_denormals(run, rounds=2, per_round=2)
    assert {path: path.stat().st_mtime_ns for path in run.rglob("*")} == files
    assert (result["suite"], result["preset"], result["step"]) == ("minatar", "drq", 300)
    assert result["ms_per_update_kept"] > 0 and result["ms_per_update_flushed"] > 0
    assert result["speedup"] == pytest.approx(
        result["ms_per_update_kept"] / result["ms_per_update_flushed"], abs=0.01)
    assert 0.0 <= result["subnormal_optimizer_state"] < 1.0
    # 200 updates leave no moment small enough to flush (from ~1e-3 that takes ~800 updates without
    # a gradient): both modes, from the same state and draws, must give the same bits
    assert result["parameters_bit_identical"] and result["max_abs_parameter_difference"] == 0.0
    assert not runtime.denormals_are_flushed()  # each timed mode was a block: the setting is back
    with pytest.raises(ValueError, match="no checkpoint.pt"):
        bench.bench_denormals(tmp_path / "elsewhere")
