"""benchmarks/bench_checkpoint.py on a tiny replay of a real game: it reports sizes that the files
on disk have, and the compressed state is the smaller one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from script_module import load_script

bench = load_script("benchmarks/bench_checkpoint.py")


def test_the_recording_repeats_in_order_and_the_buffer_holds_it():
    frames, ends = bench.record_frames("pong", 30, seed=0)
    assert frames.shape == (30, 84, 84) and frames.dtype == np.uint8 and frames.std() > 0
    buffer = bench.filled_buffer(frames, ends, 70)  # 30 + 30 + 10: the oldest slots hold step 60+
    np.testing.assert_array_equal(buffer._frames[:10], frames[:10])
    np.testing.assert_array_equal(buffer._frames[10:30], frames[10:30])
    assert len(buffer) == 70


def test_the_benchmark_reports_the_files_it_wrote(tmp_path, capsys):
    assert bench.main(["--game", "pong", "--record", "300", "--capacity", "600", "--rounds", "1",
                       "--dir", str(tmp_path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    setting, by_frames = lines[0], {line["frames"]: line for line in lines[1:3]}
    assert setting["recorded"] == 300 and setting["frame_mb"] == 600 * 84 * 84 / 1e6
    assert by_frames["raw"]["mb"] > setting["frame_mb"]  # every frame byte, and the rest
    assert by_frames["compressed"]["mb"] < 0.5 * by_frames["raw"]["mb"]  # a screen compresses
    ratio = by_frames["raw"]["mb"] / by_frames["compressed"]["mb"]  # of sizes printed to 0.01 MB
    assert lines[3]["size_ratio"] == pytest.approx(ratio, rel=0.05)
    assert list(tmp_path.iterdir()) == []  # its files are gone
