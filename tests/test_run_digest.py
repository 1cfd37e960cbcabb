"""benchmarks/run_digest.py: a finished run's README figures, against values computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from script_module import load_script

_MODULE = load_script("benchmarks/run_digest.py")


def make_run(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "episodes.csv").write_text(
        "step,env_steps,episode,return,length\n"
        "5000,5000,1,1,5000\n"
        "10000,10000,2,3,5000\n"      # ends on the window's last step: still 0-10k
        "10001,10001,3,10,1\n"
        "25000,25000,4,4,14999\n")    # then a game that never ends, to step 30,000
    (run_dir / "summary.json").write_text(json.dumps({
        "suite": "atari", "game": "boxing", "preset": "plastic", "seed": 3, "steps": 30_000,
        "updates": 1_000, "resets": 2, "score": 12.345, "score_std": 4.5, "episodes": 100,
        "human_normalized_score": 1.02, "game_length_max": 2_000,
        "time": {"updates": 120.4, "acting": 30.0, "evaluation": 20.0, "checkpoints": 0.2,
                 "plasticity_metrics": 1.0, "other": 3.4, "total": 175.0},
        "cpu_time": {"updates": 100.0, "acting": 20.0, "evaluation": 10.0, "checkpoints": 0.1,
                     "plasticity_metrics": 1.0, "other": 0.9, "total": 132.0},
        "provenance": [{"from_step": 0, "commit": "aaaaaaa1111", "dirty": False},
                       {"from_step": 12_500, "commit": "bbbbbbb2222", "dirty": True}],
    }))


def test_digest_reads_scores_times_games_and_windows(tmp_path):
    run_dir = tmp_path / "boxing" / "plastic" / "seed3"
    make_run(run_dir)
    result = _MODULE.digest(run_dir)
    assert result["run"] == "boxing/plastic/seed3"
    assert result["windows"] == [(0, 2.0, 2), (10_000, 10.0, 1), (20_000, 4.0, 1)]
    games = (result["training_games"], result["longest_training_game"], result["last_game_end"])
    assert games == (4, 14_999, 25_000)
    # 120.4 s over 1,000 updates: 120 ms each; checkpoints' 0.2 s is left out (under half a second)
    assert result["wall"] == ("3 min (175 s: 120 s updates — 120 ms each over 1,000 —, 30 s acting, "
                              "20 s evaluation, 1 s plasticity metrics, 3 s other)")
    assert result["cpu"].startswith("2 min (132 s: 100 s updates — 100 ms each over 1,000 —")
    assert result["code"] == "aaaaaaa → bbbbbbb+"
    text = _MODULE.digest_text(result)
    assert ("final score: 12.35 ± 4.50 (std) over 100 games; HNS 1.020; "
            "longest evaluation game 2,000 steps") in text
    assert "the last ending at step 25,000 of 30,000" in text
    assert "0k–10k 2.00 (2); 10k–20k 10.00 (1); 20k–30k 4.00 (1)" in text
    row = _MODULE.table_row(result)
    assert row.startswith("| boxing | plastic | 3 | 12.35 ± 4.50 (std) | 1.020 | 3 min (175 s: ")
    assert row.endswith("; CPU time " + result["cpu"] + " | aaaaaaa → bbbbbbb+ | MACHINE |")
    wide = _MODULE.digest(run_dir, window=20_000)["windows"]
    assert wide == [(0, (1 + 3 + 10) / 3, 3), (20_000, 4.0, 1)]


def test_unfinished_runs_and_bad_windows_are_refused(tmp_path, capsys):
    make_run(tmp_path / "done")
    (tmp_path / "going").mkdir()
    assert _MODULE.main([str(tmp_path / "done"), str(tmp_path / "going")]) == 1
    captured = capsys.readouterr()
    assert "boxing/plastic/seed3" in captured.out
    assert "going: no summary.json (not a finished run)" in captured.err
    with pytest.raises(SystemExit):
        _MODULE.main(["--window", "2500", str(tmp_path / "done")])
    assert "--window must be a positive multiple of 1000, got 2500" in capsys.readouterr().err
