"""benchmarks/bench_synthetic_denormals.py on a tiny synthetic run: both modes timed on the same
steps from the same trained state, the setting restored, and bad names as one-line errors."""

from __future__ import annotations

import pytest

from plastic import runtime
from script_module import load_script

bench = load_script("benchmarks/bench_synthetic_denormals.py")


def test_the_benchmark_times_the_last_steps_of_a_trained_run_in_both_modes():
    result = bench.bench_synthetic_denormals("input", "vanilla", chunks=2, iters_per_chunk=6,
                                             timed_steps=4, rounds=2)
    assert (result["task"], result["method"], result["dataset"]) == ("input", "vanilla", "digits")
    assert result["trained_steps"] == 12 and result["steps_per_round"] == 4
    assert result["ms_per_step_kept"] > 0 and result["ms_per_step_flushed"] > 0
    assert result["speedup"] == pytest.approx(result["ms_per_step_kept"] / result["ms_per_step_flushed"],
                                              abs=0.002)
    # 12 steps leave no momentum near 1e-38 (from ~1e-3 that takes ~800 steps without a gradient):
    # none subnormal, and both modes, from the same state and batches, give the same bits
    assert result["subnormal_optimizer_state"] == 0.0 and result["parameters_bit_identical"]
    assert not runtime.denormals_are_flushed()  # each timed mode was a block: the setting is back


def test_an_unknown_method_is_a_one_line_error(capsys):
    assert bench.run_main(lambda argv: bench.main(["input", "nosuch", "--chunks", "1"])) == 2
    error = capsys.readouterr().err
    assert error.startswith("plastic: error:") and "nosuch" in error and "vanilla" in error
