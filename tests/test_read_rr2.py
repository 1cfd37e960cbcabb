"""benchmarks/atari100k/read_rr2.py: the pre-registered reading of the ratio-2 pairs, against
verdicts worked out by hand, and on the committed runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from script_module import load_script

ROOT = Path(__file__).resolve().parents[1]
_MODULE = load_script("benchmarks/atari100k/read_rr2.py")


def put(sweep: Path, game: str, preset: str, seed: int, score: float) -> None:
    run = sweep / game / preset / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"score": score}))


def make(tmp_path: Path, pairs: dict[str, tuple[float, float]]) -> tuple[Path, Path]:
    rr1, rr2 = tmp_path / "rr1", tmp_path / "rr2"
    # ratio-1 drq seeds: spreads 2.0 (a), 10.0 (b), 100.0 (c)
    for game, (low, high) in {"a": (10.0, 12.0), "b": (30.0, 20.0), "c": (900.0, 1000.0)}.items():
        put(rr1, game, "drq", 0, low)
        put(rr1, game, "drq", 1, high)
    for game, (drq, plastic) in pairs.items():
        put(rr2, game, "drq", 0, drq)
        put(rr2, game, "plastic", 0, plastic)
    return rr2, rr1


@pytest.mark.parametrize(("pairs", "verdicts", "reading"), [
    # a: +2.5 > 2 ahead; b: -10 is not beyond 10, a tie; c: +150 > 100 ahead
    ({"a": (12.0, 14.5), "b": (25.0, 15.0), "c": (1000.0, 1150.0)}, ["ahead", "tie", "ahead"],
     "in the paper's direction"),
    ({"a": (12.0, 14.5), "b": (25.0, 10.0), "c": (1000.0, 1150.0)}, ["ahead", "behind", "ahead"],
     "no sign either way"),
    ({"a": (12.0, 9.0), "b": (25.0, 14.0), "c": (1000.0, 1050.0)}, ["behind", "behind", "tie"], "against it"),
    ({"a": (12.0, 14.5), "b": (25.0, 25.0), "c": (1000.0, 1000.0)}, ["ahead", "tie", "tie"],
     "no sign either way"),
])
def test_verdicts_and_the_reading_follow_the_rule(tmp_path, pairs, verdicts, reading):
    result = _MODULE.read_pairs(*make(tmp_path, pairs))
    assert [result["games"][g]["verdict"] for g in "abc"] == verdicts
    assert result["reading"] == reading and not result["pending"]
    assert _MODULE.reading_text(result).endswith(f": {reading} (final)")


def test_games_planned_but_unfinished_are_pending_and_a_lone_seed_sets_no_threshold(tmp_path):
    rr1, rr2 = tmp_path / "rr1", tmp_path / "rr2"
    for seed, score in ((0, 10.0), (1, 12.0)):
        put(rr1, "breakout", "drq", seed, score)
    put(rr1, "seaquest", "drq", 0, 300.0)  # one seed only
    put(rr2, "breakout", "drq", 0, 12.0)
    put(rr2, "breakout", "plastic", 0, 14.5)
    put(rr2, "boxing", "drq", 0, 20.0)  # its plastic run is still going
    put(rr2, "seaquest", "drq", 0, 1.0)
    put(rr2, "seaquest", "plastic", 0, 9.0)
    # the last command plans ms_pacman too; pong was asked for by an earlier command only
    command = ["plastic", "sweep", "atari100k", "--games", "breakout,boxing,seaquest,ms_pacman",
               "--presets", "drq,plastic", "--seeds", "1", "--replay-ratio", "2"]
    (rr2 / "sweep.json").write_text(json.dumps({"games": ["breakout", "pong"], "command": command}))
    result = _MODULE.read_pairs(rr2, rr1)
    assert list(result["games"]) == ["breakout"]
    assert result["pending"] == {"boxing": "no finished pair yet", "ms_pacman": "no finished pair yet",
                                 "seaquest": "ratio-1 drq seeds 0 and 1 not both finished, so no threshold"}
    text = _MODULE.reading_text(result)
    assert "| breakout | 12.00 | 14.50 | +2.50 | 2.00 | ahead |" in text
    assert text.endswith("no sign either way (so far, 3 game(s) pending)")
    assert "pong" not in text


def test_the_committed_runs_read_as_the_readme_says():
    atari100k = ROOT / "benchmarks" / "atari100k"
    result = _MODULE.read_pairs(atari100k / "rr2", atari100k / "drq-rr1")
    breakout = result["games"]["breakout"]
    assert (breakout["drq"], breakout["plastic"], breakout["verdict"]) == (12.83, 21.5, "ahead")
    assert breakout["threshold"] == pytest.approx(15.60 - 13.39, abs=0.005)


def test_later_ratio1_seeds_leave_the_pre_registered_threshold_alone(tmp_path):
    rr2, rr1 = make(tmp_path, {"a": (12.0, 14.5)})
    put(rr1, "a", "drq", 2, 30.0)  # would widen the spread from 2 to 20
    put(rr1, "c", "drq", 2, 0.0)
    result = _MODULE.read_pairs(rr2, rr1)
    assert result["games"]["a"]["threshold"] == 2.0 and result["games"]["a"]["verdict"] == "ahead"
    rr1_lone = tmp_path / "lone"
    for seed, score in ((0, 10.0), (2, 40.0)):  # seeds 0 and 2: no seed 1, no threshold
        put(rr1_lone, "a", "drq", seed, score)
    assert "a" in _MODULE.read_pairs(rr2, rr1_lone)["pending"]
