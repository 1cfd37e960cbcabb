"""Reports: the aggregate statistics equal rliable's own (and hand computations), human-normalised
scores equal hand computation, labels and learning curves are built right, files are written."""

from __future__ import annotations

import base64
import csv
import itertools
import json
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

pytest.importorskip("rliable")

from rliable import library as rly  # noqa: E402
from rliable import metrics as rlm  # noqa: E402

from plastic.data import published_baseline  # noqa: E402
from plastic.envs.scores import human_normalized_score  # noqa: E402
from plastic.experiments import plots, stats  # noqa: E402
from plastic.experiments.cli import main  # noqa: E402
from plastic.experiments.collect import (  # noqa: E402
    find_runs,
    game_bounds,
    load_baseline,
    normalize,
    score_matrices,
)
from plastic.experiments.plots import compact_number  # noqa: E402
from plastic.experiments.report import (  # noqa: E402
    _binned_values,
    _p_value_text,
    _step_values,
    build_report,
    code_text,
    learning_curves,
    plasticity_curves,
)

REPS = 300


def rliable_aggregates(scores: np.ndarray, seed: int, reps: int) -> tuple[np.ndarray, np.ndarray]:
    def func(x: np.ndarray) -> np.ndarray:
        return np.array([rlm.aggregate_iqm(x), rlm.aggregate_median(x), rlm.aggregate_mean(x),
                         rlm.aggregate_optimality_gap(x)])

    np.random.seed(seed)  # rliable's bootstrap draws from NumPy's global random state
    points, intervals = rly.get_interval_estimates({"k": scores}, func, reps=reps)
    return points["k"], intervals["k"]


def test_aggregates_equal_rliable_on_a_fixed_score_matrix():
    rng = np.random.default_rng(0)
    matrices = {"a": rng.gamma(2.0, 0.4, size=(5, 7)), "b": rng.normal(0.6, 0.5, size=(4, 7))}
    ours = stats.aggregate_metrics(matrices, reps=REPS, seed=3)
    for key, scores in matrices.items():
        points, intervals = rliable_aggregates(scores, seed=3, reps=REPS)
        for i, metric in enumerate(stats.METRICS):
            assert ours[key][metric]["value"] == pytest.approx(points[i], rel=1e-12, abs=1e-12)
            assert ours[key][metric]["low"] == pytest.approx(intervals[0, i], rel=1e-12, abs=1e-12)
            assert ours[key][metric]["high"] == pytest.approx(intervals[1, i], rel=1e-12, abs=1e-12)
            assert intervals[0, i] <= points[i] + 1e-12 and points[i] <= intervals[1, i] + 1e-12
    # a key's interval does not depend on the other keys in the report
    alone = stats.aggregate_metrics({"b": matrices["b"]}, reps=REPS, seed=3)
    assert alone["b"] == ours["b"]
    other_seed = stats.aggregate_metrics({"b": matrices["b"]}, reps=REPS, seed=4)
    assert other_seed["b"]["iqm"]["low"] != ours["b"]["iqm"]["low"]


def test_point_estimates_equal_hand_computation():
    scores = np.array([[0.1, 2.0, 0.5, -0.3], [0.7, 1.5, 0.2, 0.4]])  # 2 runs × 4 games
    result = stats.aggregate_metrics({"x": scores}, reps=100)["x"]
    middle = np.sort(scores.ravel())[2:6]  # 8 scores: drop the 2 lowest and the 2 highest
    assert result["iqm"]["value"] == pytest.approx(middle.mean())
    assert result["iqm"]["value"] == pytest.approx(scipy.stats.trim_mean(scores, 0.25, axis=None))
    per_game = scores.mean(axis=0)  # [0.4, 1.75, 0.35, 0.05]
    assert result["median"]["value"] == pytest.approx((0.35 + 0.4) / 2)
    assert result["mean"]["value"] == pytest.approx(per_game.mean())
    assert result["optimality_gap"]["value"] == pytest.approx(1 - np.minimum(scores, 1).mean())


def test_iqm_curves_equal_rliable():
    rng = np.random.default_rng(3)
    curves = rng.normal(size=(3, 4, 5))  # runs × games × points
    ours = stats.iqm_curves({"k": curves}, reps=150, seed=2)["k"]
    np.random.seed(2)
    def iqm_per_point(s: np.ndarray) -> np.ndarray:
        return np.array([rlm.aggregate_iqm(s[..., t]) for t in range(s.shape[-1])])

    points, intervals = rly.get_interval_estimates({"k": curves}, iqm_per_point, reps=150)
    np.testing.assert_allclose(ours["value"], points["k"])
    np.testing.assert_allclose(ours["low"], intervals["k"][0])
    np.testing.assert_allclose(ours["high"], intervals["k"][1])
    np.testing.assert_allclose(ours["value"], [scipy.stats.trim_mean(curves[..., t], 0.25, axis=None)
                                               for t in range(5)])


def test_probability_of_improvement_equals_rliable():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, size=(4, 3)).astype(float)  # small integers: plenty of ties
    y = rng.integers(0, 4, size=(5, 3)).astype(float)
    same = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert stats.improvement_probability(x, y) == pytest.approx(rlm.probability_of_improvement(x, y))
    assert stats.improvement_probability(same, same) == pytest.approx(0.5)
    # hand count on one game: x = [2, 1], y = [1, 0] -> pairs won 3, tied 1 of 4 -> 3.5 / 4
    assert stats.improvement_probability(np.array([[2.0], [1.0]]), np.array([[1.0], [0.0]])) == 0.875

    ours = stats.probability_of_improvement({"x": x, "y": y}, [("x", "y")], reps=100, seed=5)[("x", "y")]
    np.random.seed(5)
    points, intervals = rly.get_interval_estimates(
        {"xy": [x, y]}, lambda a, b: np.array([rlm.probability_of_improvement(a, b)]), reps=100)
    assert ours["value"] == pytest.approx(points["xy"][0])
    assert (ours["low"], ours["high"]) == pytest.approx((intervals["xy"][0, 0], intervals["xy"][1, 0]))


def test_performance_profile_equals_rliable():
    rng = np.random.default_rng(2)
    scores = rng.gamma(2.0, 0.5, size=(5, 6))
    taus = np.linspace(0, 3, 31)
    ours = stats.performance_profiles({"k": scores}, taus, reps=200, seed=7)["k"]
    np.random.seed(7)
    points, intervals = rly.create_performance_profile({"k": scores}, taus, reps=200)
    np.testing.assert_allclose(ours["value"], points["k"])
    np.testing.assert_allclose(ours["low"], intervals["k"][0])
    np.testing.assert_allclose(ours["high"], intervals["k"][1])
    assert ours["value"][0] == 1.0 and np.all(np.diff(ours["value"]) <= 0)
    narrow = stats.performance_profiles({"k": scores}, taus, reps=200, seed=7, confidence=0.5)["k"]
    np.random.seed(7)
    _, intervals = rly.create_performance_profile({"k": scores}, taus, reps=200, confidence_interval_size=0.5)
    np.testing.assert_allclose(narrow["low"], intervals["k"][0])
    np.testing.assert_allclose(narrow["high"], intervals["k"][1])
    assert np.any(narrow["high"] - narrow["low"] < ours["high"] - ours["low"])


def test_curve_helpers_by_hand():
    x, y = np.array([10.0, 30.0]), np.array([1.0, 5.0])
    np.testing.assert_array_equal(_step_values(x, y, np.array([5.0, 10.0, 20.0, 30.0, 40.0])),
                                  [np.nan, 1.0, 1.0, 5.0, 5.0])
    edges = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    steps, returns = np.array([3.0, 8.0, 25.0, 30.0]), np.array([1.0, 3.0, 6.0, 10.0])
    np.testing.assert_array_equal(_binned_values(steps, returns, edges), [2.0, 2.0, 8.0, 8.0])
    # two seeds: a resampled mean is 1, 2 or 3 with chances 1/4, 1/2, 1/4, so the 95% interval is
    # [1, 3] and the 40% one (30th to 70th percentile) [2, 2]; a lone value is its own interval
    two = np.array([[1.0, np.nan], [3.0, 4.0]])
    mean, low, high = stats.bootstrap_mean_ci(two, reps=200)
    np.testing.assert_array_equal(mean, [2.0, 4.0])
    np.testing.assert_array_equal(low, [1.0, 4.0])
    np.testing.assert_array_equal(high, [3.0, 4.0])
    _, low, high = stats.bootstrap_mean_ci(two, reps=2000, confidence=0.4)
    np.testing.assert_array_equal(low, [2.0, 4.0])
    np.testing.assert_array_equal(high, [2.0, 4.0])
    mean, low, high = stats.bootstrap_mean_ci(np.array([[5.0, 6.0]]))
    assert mean.tolist() == low.tolist() == high.tolist() == [5.0, 6.0]


# ------------------------------------------------------------------------------ run directories
def write_run(root: Path, suite: str, game: str, preset: str, seed: int, score: float,
              extra_config: dict | None = None, evals: list[tuple[int, float]] | None = None,
              steps: int = 1000) -> Path:
    """A finished run as plastic train leaves it; ``summary.json`` records the ``train.steps``
    of its config (``steps`` unless ``extra_config`` gives a train section)."""
    run_dir = root / game / preset / f"seed{seed}"
    run_dir.mkdir(parents=True)
    config = {"suite": suite, "game": game, "preset": preset, "seed": seed,
              "train": {"replay_ratio": 2.0, "steps": steps}, **(extra_config or {})}
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "summary.json").write_text(json.dumps({
        "suite": suite, "game": game, "preset": preset, "seed": seed, "score": score,
        "steps": config["train"].get("steps", steps), "updates": 2000, "wall_seconds": 12.0}))
    with (run_dir / "episodes.csv").open("w") as f:
        f.write("step,episode,return,length\n")
        for i, step in enumerate(range(100, 1001, 100)):
            f.write(f"{step},{i + 1},{score * step / 1000},{100}\n")
    if evals:
        with (run_dir / "eval.csv").open("w") as f:
            f.write("step,score,score_std,episodes\n")
            f.writelines(f"{s},{v},0,1\n" for s, v in evals)
    return run_dir


def read_scores(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_atari_report_human_normalised_by_hand_with_baseline(tmp_path):
    raw = {("pong", 0): 0.0, ("pong", 1): 3.0, ("breakout", 0): 10.0, ("breakout", 1): 16.1,
           ("alien", 0): 1000.0, ("alien", 1): 227.8}
    for (game, seed), score in raw.items():
        write_run(tmp_path / "sweep", "atari", game, "drq", seed, score,
                  evals=[(300, score / 3), (600, score / 2), (1000, score)])
        better = score * 2 + 1
        write_run(tmp_path / "sweep", "atari", game, "plastic", seed, better,
                  evals=[(300, better / 3), (600, better / 2), (1000, better)])
    (tmp_path / "sweep" / "alien" / "plastic" / "seed9").mkdir()  # an unfinished run
    (tmp_path / "sweep" / "alien" / "plastic" / "seed9" / "config.json").write_text("{}")
    baseline = tmp_path / "atari100k_published_Old_runs.json"
    baseline.write_text(json.dumps({"Pong": [-20.7, -10.0, 0.0], "Breakout": [5.0, 6.0, 7.0],
                                    "Alien": [500.0, 600.0, 700.0], "BankHeist": [20.0]}))
    result = build_report([tmp_path / "sweep"], tmp_path / "rep", baselines=[str(baseline)], reps=REPS)

    # (score - random) / (human - random), with the standard Atari human/random scores typed in
    hand = {"pong": lambda s: (s + 20.7) / 35.3, "breakout": lambda s: (s - 1.7) / 28.8,
            "alien": lambda s: (s - 227.8) / 6899.9}
    rows = read_scores(tmp_path / "rep" / "scores.csv")
    drq_rows = [r for r in rows if r["label"] == "drq"]
    assert len(drq_rows) == 6
    for row in drq_rows:
        score = raw[(row["game"], int(row["seed"]))]
        assert float(row["normalized"]) == pytest.approx(hand[row["game"]](score), rel=1e-5)
    assert float(next(r for r in drq_rows if r["game"] == "pong" and r["seed"] == "0")["normalized"]) \
        == pytest.approx(0.586402, rel=1e-5)

    # aggregates over the games every entry has (bank_heist only in the baseline: left out)
    assert result["games"] == ["alien", "breakout", "pong"]
    assert result["labels"] == ["drq", "plastic", "Old (published)"]
    games = ["alien", "breakout", "pong"]
    drq_matrix = np.array([[hand[g](raw[(g, s)]) for g in games] for s in (0, 1)])
    expected = stats.aggregate_metrics({"drq": drq_matrix}, reps=REPS)["drq"]
    for metric in stats.METRICS:
        for key in ("value", "low", "high"):
            assert result["aggregates"]["drq"][metric][key] == pytest.approx(expected[metric][key], rel=1e-4)
    baseline_matrix = np.array([[hand["alien"](a), hand["breakout"](b), hand["pong"](p)]
                                for a, b, p in zip([500, 600, 700], [5, 6, 7], [-20.7, -10, 0])])
    assert result["aggregates"]["Old (published)"]["iqm"]["value"] == pytest.approx(
        scipy.stats.trim_mean(baseline_matrix, 0.25, axis=None), rel=1e-5)
    pairs = {(p["x"], p["y"]): p for p in result["probability_of_improvement"]}
    assert set(pairs) == {("plastic", "drq"), ("drq", "Old (published)"), ("plastic", "Old (published)")}
    # by hand, run pairs plastic wins per game: pong {1, 7} vs {0, 3}: 3/4; breakout 4/4; alien
    # {2001, 456.6} vs {1000, 227.8}: 3/4
    assert pairs[("plastic", "drq")]["value"] == pytest.approx((0.75 + 1 + 0.75) / 3)

    # IQM over training at the steps every run evaluated at; the last one is the final score
    curve = result["iqm_curves"]["drq"]
    assert curve["steps"] == [300, 600, 1000]
    assert curve["value"][2] == pytest.approx(result["aggregates"]["drq"]["iqm"]["value"])
    first = np.array([[hand[g](raw[(g, s)] / 3) for g in games] for s in (0, 1)])
    assert curve["value"][0] == pytest.approx(scipy.stats.trim_mean(first, 0.25, axis=None))
    assert curve["low"][0] <= curve["value"][0] <= curve["high"][0]

    markdown = (tmp_path / "rep" / "report.md").read_text()
    for text in ("IQM", "Optimality gap", "Probability of improvement", "| pong | -20.7 | 14.6 |",
                 "unfinished", "bank_heist", "Old (published)"):
        assert text in markdown, text
    figures = sorted(p.name for p in (tmp_path / "rep" / "figures").glob("*.png"))
    assert figures == ["aggregates.png", "iqm_curves.png", "learning_curves.png", "performance_profiles.png",
                       "probability_of_improvement.png"]
    page = (tmp_path / "rep" / "report.html").read_text()
    images = page.split('src="data:image/png;base64,')[1:]
    assert len(images) == 5 and "figures/" not in page
    assert base64.b64decode(images[0].split('"')[0])[:8] == b"\x89PNG\r\n\x1a\n"


def test_minatar_minmax_normalisation_and_labels_by_differing_config(tmp_path):
    for seed, (low, high) in enumerate([(1.0, 4.0), (3.0, 9.0)]):
        write_run(tmp_path / "rr1", "minatar", "breakout", "drq", seed, low,
                  extra_config={"train": {"replay_ratio": 1.0, "steps": 1000}})
        write_run(tmp_path / "rr2", "minatar", "breakout", "drq", seed, high,
                  evals=[(300, 2.0), (600, 11.0), (1000, high)] if seed == 1 else None)
    # a run written by a newer schema (an extra section) is labelled by its settings alone
    write_run(tmp_path / "rr2", "minatar", "asterix", "drq", 0, 2.0,
              extra_config={"sac": {"batch_size": 512}, "env": {"obs": "pixels"}})
    runs, unfinished = find_runs([tmp_path / "rr1", tmp_path / "rr2"])
    assert not unfinished
    assert sorted({r.label for r in runs}) == ["drq [train.replay_ratio=1]", "drq [train.replay_ratio=2]"]
    shutil.rmtree(tmp_path / "rr2" / "asterix")  # the rest of the test is about breakout alone
    assert main(["report", str(tmp_path / "rr1"), str(tmp_path / "rr2"), "--out", str(tmp_path / "rep"),
                 "--reps", "200"]) == 0
    scores = read_scores(tmp_path / "rep" / "scores.csv")
    rows = {(r["label"], r["seed"]): float(r["normalized"]) for r in scores}
    # min 1 (a final score), max 11 (an evaluation during training) over all runs of the game
    assert rows[("drq [train.replay_ratio=1]", "0")] == 0.0
    assert rows[("drq [train.replay_ratio=1]", "1")] == pytest.approx(2 / 10)
    assert rows[("drq [train.replay_ratio=2]", "1")] == pytest.approx(8 / 10)
    assert "min-max normalised" in (tmp_path / "rep" / "report.md").read_text()


def test_a_key_older_configs_lack_counts_as_its_schema_default(tmp_path):
    """A run made before train.precision existed ran fp32 (the key's default): beside bf16 runs
    of its preset it is labelled fp32, not lumped with them; beside fp32 runs, not split off."""
    write_run(tmp_path / "old", "minatar", "breakout", "drq", 0, 1.0)  # no train.precision
    write_run(tmp_path / "bf16", "minatar", "breakout", "drq", 1, 2.0,
              extra_config={"train": {"replay_ratio": 2.0, "steps": 1000, "precision": "bf16"}})
    write_run(tmp_path / "fp32", "minatar", "breakout", "drq", 2, 3.0,
              extra_config={"train": {"replay_ratio": 2.0, "steps": 1000, "precision": "fp32"}})
    runs, _ = find_runs([tmp_path / "old", tmp_path / "bf16"])
    assert {r.seed: r.label for r in runs} == {0: "drq [train.precision=fp32]",
                                               1: "drq [train.precision=bf16]"}
    runs, _ = find_runs([tmp_path / "old", tmp_path / "fp32"])
    assert {r.label for r in runs} == {"drq"}
    assert runs[0].config["train.precision"] == "fp32" and "sam.rho" in runs[0].config  # filled in


PLASTICITY_HEADER = "step,env_steps,encoder_active,encoder_dormant,encoder_weight_norm,head_active," \
    "head_dormant,head_weight_norm,feature_srank\n"


def write_plasticity(run_dir: Path, rows: list[tuple[int, float, float]], resets: list[int] = (),
                     tail: str = "") -> None:
    """plasticity.csv rows (step, head_dormant, feature_srank; the other columns fixed) and resets.csv."""
    with (run_dir / "plasticity.csv").open("w") as f:
        f.write(PLASTICITY_HEADER)
        f.writelines(f"{step},{step},0.5,0.0,3.0,0.4,{dormant},20.0,{srank}\n"
                     for step, dormant, srank in rows)
        f.write(tail)
    if resets:
        (run_dir / "resets.csv").write_text("step,updates\n" + "".join(f"{s},{2 * s}\n" for s in resets))


def test_plasticity_section_by_hand(tmp_path):
    """The table holds each run's last measurement averaged over seeds, the curves the mean over
    seeds at every logged step (a run's latest value carried), the markers every Reset of any seed."""
    for seed in (0, 1):
        drq = write_run(tmp_path, "minatar", "breakout", "drq", seed, 3.0 + seed)
        write_plasticity(drq, [(500, 0.1 + seed, 40.0), (1000, 0.2 + seed, 30.0 + 10 * seed)])
        plastic = write_run(tmp_path, "minatar", "breakout", "plastic", seed, 5.0 + seed)
        write_plasticity(plastic, [(500, 0.05, 50.0), (1000, 0.02, 60.0)][: 2 - seed],
                         resets=[300, 700] if seed == 0 else [300])
    result = build_report([tmp_path], tmp_path / "rep", reps=200)
    section = result["plasticity"]
    assert section["at_end"]["breakout"]["drq"]["feature_srank"] == pytest.approx((30.0 + 40.0) / 2)
    assert section["at_end"]["breakout"]["drq"]["head_dormant"] == pytest.approx((0.2 + 1.2) / 2)
    # plastic seed 1 measured once (step 500): its last value is that one
    assert section["at_end"]["breakout"]["plastic"]["feature_srank"] == pytest.approx((60.0 + 50.0) / 2)
    assert section["at_end"]["breakout"]["plastic"]["seeds"] == 2
    assert section["reset_steps"] == {"breakout": {"plastic": [300.0, 700.0]}}
    assert "env_steps" not in section["columns"] and "step" not in section["columns"]
    figures = sorted(p.name for p in (tmp_path / "rep" / "figures").glob("plasticity_*.png"))
    assert figures == ["plasticity_encoder_dormant.png", "plasticity_feature_srank.png",
                       "plasticity_head_dormant.png", "plasticity_head_weight_norm.png"]
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## Plasticity during training" in text and "| breakout | plastic | 2 |" in text

    runs, _ = find_runs([tmp_path])
    curves = plasticity_curves(runs, ["drq", "plastic"], ["feature_srank"], seed=0)["feature_srank"]
    np.testing.assert_array_equal(curves["breakout"]["drq"]["x"], [500, 1000])
    np.testing.assert_allclose(curves["breakout"]["drq"]["mean"], [40.0, 35.0])
    np.testing.assert_allclose(curves["breakout"]["plastic"]["mean"], [50.0, 55.0])  # 50 carried to 1000


def test_learning_curves_mark_the_resets(tmp_path, monkeypatch):
    drawn = {}
    original = plots.plot_learning_curves

    def capture(curves, labels, colors, path, **kwargs):
        drawn[path.name] = kwargs.get("markers")
        return original(curves, labels, colors, path, **kwargs)

    monkeypatch.setattr(plots, "plot_learning_curves", capture)
    for seed in (0, 1):
        write_run(tmp_path, "minatar", "breakout", "drq", seed, 3.0 + seed)
        plastic = write_run(tmp_path, "minatar", "breakout", "plastic", seed, 5.0 + seed)
        write_plasticity(plastic, [(500, 0.05, 50.0)], resets=[400, 800] if seed == 0 else [400])
    build_report([tmp_path], tmp_path / "rep", reps=200)
    assert drawn["learning_curves.png"] == {"breakout": {"plastic": [400.0, 800.0]}}
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "shaded 95% bootstrap CI over seeds; dotted lines: Resets" in report


def test_reset_markers_are_drawn_in_the_labels_colour(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.setdefault("fig", fig) and path)
    curve = {"x": np.array([1.0, 2.0]), "mean": np.array([1.0, 2.0]), "low": np.array([0.5, 1.5]),
             "high": np.array([1.5, 2.5]), "seeds": 1}
    colors = {"drq": "red", "plastic": "blue"}
    plots.plot_learning_curves({"pong": {"drq": curve, "plastic": curve}}, ["drq", "plastic"], colors,
                               tmp_path / "c.png", xlabel="steps", ylabels={},
                               markers={"pong": {"plastic": [1.25, 1.75]}})
    ax = drawn["fig"].axes[0]
    vertical = [(line.get_xdata()[0], line.get_color()) for line in ax.lines if line.get_linestyle() == ":"]
    assert vertical == [(1.25, "blue"), (1.75, "blue")]


def test_a_damaged_plasticity_file_leaves_the_run_in_the_report(tmp_path, capsys):
    torn = write_run(tmp_path, "minatar", "breakout", "drq", 0, 3.0)
    write_plasticity(torn, [(500, 0.1, 40.0), (1000, 0.2, 30.0)], tail="1500,1500,0.5")
    broken = write_run(tmp_path, "minatar", "breakout", "drq", 1, 4.0)
    write_plasticity(broken, [(500, 0.1, 40.0)], tail="x,y\n1000,1000,0.5,0,3,0.4,0.1,20,10\n")
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep"), "--reps", "200"]) == 0
    err = capsys.readouterr().err
    assert "dropped its torn last row" in err and f"{broken}: left out its plasticity.csv" in err
    numbers = json.loads((tmp_path / "rep" / "aggregates.json").read_text())
    assert len(read_scores(tmp_path / "rep" / "scores.csv")) == 2  # both runs reported
    at_end = numbers["plasticity"]["at_end"]["breakout"]["drq"]
    assert at_end["seeds"] == 1 and at_end["feature_srank"] == 30.0  # the torn run's last whole row


def test_per_run_table_gives_the_longest_evaluation_game_and_the_cpu_time(tmp_path):
    recorded = write_run(tmp_path, "minatar", "breakout", "drq", 0, 3.0)
    summary = json.loads((recorded / "summary.json").read_text())
    summary["lengths"] = [812, 27000, 95]
    summary["cpu_time"] = {"updates": 6.0, "total": 9.4}
    (recorded / "summary.json").write_text(json.dumps(summary))
    write_run(tmp_path, "minatar", "breakout", "drq", 1, 4.0)  # from before both were recorded
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep"), "--reps", "200"]) == 0
    table = (tmp_path / "rep" / "report.md").read_text().split("## Per-run scores")[1]
    header = [c.strip() for c in table.split("\n")[2].strip("|").split("|")]
    cells = {int(row[header.index("seed")]): (row[header.index("longest game")],
                                              row[header.index("wall time (s)")],
                                              row[header.index("CPU time (s)")])
             for row in ([c.strip() for c in line.strip("|").split("|")]
                         for line in table.split("\n")[4:6])}
    assert cells == {0: ("27000", "12", "9"), 1: ("", "12", "")}
    scores = {row["seed"]: row["cpu_seconds"] for row in read_scores(tmp_path / "rep" / "scores.csv")}
    assert scores == {"0": "9.4", "1": ""}


def test_code_column_names_each_commit_once_in_order():
    segment = lambda commit, dirty=False: {"commit": commit, "dirty": dirty}  # noqa: E731
    assert code_text([segment("42d2a18aaaa")]) == "42d2a18"
    assert code_text([segment("42d2a18aaaa"), segment("42d2a18aaaa"), segment("50739a6bbbb", True)]) \
        == "42d2a18 → 50739a6+"
    assert code_text([segment(None)]) == "?" and code_text(None) == ""


def test_report_rejects_bad_input(tmp_path, capsys):
    write_run(tmp_path / "m", "minatar", "breakout", "drq", 0, 1.0)
    assert main(["report", str(tmp_path / "m"), "--normalization", "human"]) == 2
    assert "Atari only" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no finished runs" in capsys.readouterr().err
    write_run(tmp_path / "m", "atari", "pong", "drq", 0, 1.0)
    with pytest.raises(ValueError, match="mix benchmarks"):
        find_runs([tmp_path / "m"])
    with pytest.raises(ValueError, match="NaN"):
        stats.aggregate_metrics({"x": np.array([[np.nan, 1.0]])})


def test_replay_ratio_scaling_section_holds_each_ratios_aggregate(tmp_path):
    rng = np.random.default_rng(1)
    for ratio in (1.0, 2.0, 4.0):
        for preset in ("drq", "plastic"):
            for game in ("breakout", "asterix"):
                for seed in range(2):
                    write_run(tmp_path / f"rr{ratio:g}", "minatar", game, preset, seed,
                              float(rng.uniform(0, 10)),
                              extra_config={"train": {"replay_ratio": ratio, "steps": 1000}})
    # a preset at one ratio only has no scaling line
    write_run(tmp_path / "other", "minatar", "breakout", "drq+ln", 0, 5.0)
    write_run(tmp_path / "other", "minatar", "asterix", "drq+ln", 0, 5.0)
    dirs = [tmp_path / d for d in ("rr1", "rr2", "rr4", "other")]
    result = build_report(dirs, tmp_path / "rep", reps=REPS, normalization="none")
    scaling = result["replay_ratio_scaling"]
    assert set(scaling) == {"drq", "plastic"}
    for preset, points in scaling.items():
        assert [p["replay_ratio"] for p in points] == [1.0, 2.0, 4.0]
        for point in points:
            label = f"{preset} [train.replay_ratio={point['replay_ratio']:g}]"
            assert point["value"] == result["aggregates"][label]["iqm"]["value"]
            assert point["low"] <= point["value"] <= point["high"]
    # the IQM by hand: 2 seeds x 2 games = 4 scores, the middle two
    scores = read_scores(tmp_path / "rep" / "scores.csv")
    picked = sorted(float(r["score"]) for r in scores if r["label"] == "plastic [train.replay_ratio=2]")
    assert scaling["plastic"][1]["value"] == pytest.approx(np.mean(picked[1:3]))
    assert (tmp_path / "rep" / "figures" / "replay_ratio_scaling.png").stat().st_size > 1000
    assert "Scaling with the replay ratio" in (tmp_path / "rep" / "report.md").read_text()


def test_dmc_report_optimality_gap_is_against_the_maximum_return(tmp_path):
    returns = {("walker-run", 0): 300.0, ("walker-run", 1): 500.0, ("cheetah-run", 0): 900.0,
               ("cheetah-run", 1): 1000.0}
    for (task, seed), score in returns.items():
        write_run(tmp_path / "dmc", "dmc", task, "drq", seed, score)
    result = build_report([tmp_path / "dmc"], tmp_path / "rep", reps=REPS)
    gap = result["aggregates"]["drq"]["optimality_gap"]["value"]
    assert gap == pytest.approx(rlm.aggregate_optimality_gap(np.array([[900.0, 300.0], [1000.0, 500.0]]),
                                                             gamma=1000.0))
    assert gap == pytest.approx((100 + 700 + 0 + 500) / 4)  # mean shortfall from 1000, by hand
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "γ = 1000" in text and "2 tasks" in text


def test_dmc_learning_curves_are_in_env_steps(tmp_path):
    # Evaluations every 5k env steps: 2.5k agent steps at action repeat 2, 1.25k at 4.
    env_steps = [5000, 10000, 15000]
    for task, repeat in (("walker-run", 2), ("cheetah-run", 4)):
        for seed in (0, 1):
            evals = [(s // repeat, 100.0 * seed + s / 100) for s in env_steps]
            # Seed 0 logs the env_steps column; seed 1, as runs from before it, has only the
            # config's action repeat to go by.
            config = {} if seed == 0 else {"env": {"action_repeat": repeat}}
            run_dir = write_run(tmp_path / "dmc", "dmc", task, "drq", seed, 200.0, extra_config=config,
                                evals=evals)
            if seed == 0:
                with (run_dir / "eval.csv").open("w") as f:
                    f.write("step,env_steps,score,score_std,episodes\n")
                    f.writelines(f"{a},{e},{v},0,1\n" for (a, v), e in zip(evals, env_steps))
    runs, _ = find_runs([tmp_path / "dmc"])
    assert len(runs) == 4 and all(r.curve.x.tolist() == env_steps for r in runs)
    curves, _ = learning_curves(runs, ["drq"])
    narrow, _ = learning_curves(runs, ["drq"], confidence=0.4)
    for task in ("walker-run", "cheetah-run"):
        assert curves[task]["drq"]["x"].tolist() == env_steps
        np.testing.assert_allclose(curves[task]["drq"]["mean"], [100.0, 150.0, 200.0])
        # two seeds, 100 apart: the 95% band spans both, the 40% one is the mean (see above)
        np.testing.assert_allclose(curves[task]["drq"]["low"], [50.0, 100.0, 150.0])
        np.testing.assert_allclose(curves[task]["drq"]["high"], [150.0, 200.0, 250.0])
        np.testing.assert_allclose(narrow[task]["drq"]["low"], narrow[task]["drq"]["mean"])
    result = build_report([tmp_path / "dmc"], tmp_path / "rep", reps=REPS)
    assert result["iqm_curves"]["drq"]["steps"] == env_steps


def test_step_ticks_are_compact():
    assert [compact_number(v) for v in (0, 7, 999, 1000, 20_000, 62_500, 2_500_000, -3000)] == [
        "0", "7", "999", "1k", "20k", "62.5k", "2.5M", "-3k"]


# ------------------------------------------------------------------------ published baselines
PUBLISHED_IQM = {"der": 0.183, "drq": 0.224, "drq-eps": 0.280, "spr": 0.337}  # rliable authors' figures


def bundled_file(name: str) -> Path:
    return Path(str(resources.files("plastic.data").joinpath(published_baseline(name).filename)))


@pytest.mark.parametrize("name", sorted(PUBLISHED_IQM))
def test_bundled_baselines_give_the_published_iqm(name):
    runs = load_baseline(name, "atari")
    normalize(runs, game_bounds(runs, "human"))
    matrices, games, notes = score_matrices(runs, [runs[0].label])
    assert len(games) == 26 and not notes and matrices[runs[0].label].shape == (100, 26)
    iqm = stats.aggregate_metrics(matrices, reps=500)[runs[0].label]["iqm"]
    assert iqm["value"] == pytest.approx(PUBLISHED_IQM[name], abs=0.005)
    assert iqm["low"] < iqm["value"] < iqm["high"] and iqm["high"] - iqm["low"] < 0.025


def test_bundled_baseline_by_name_equals_the_file(tmp_path, capsys):
    def content(runs):
        return [(r.label, r.game, r.seed, r.score) for r in runs]

    for name in PUBLISHED_IQM:
        by_file = load_baseline(str(bundled_file(name)), "atari")
        assert content(load_baseline(name, "atari")) == content(by_file)
    assert load_baseline("drq-eps", "atari")[0].label == "DrQ(ε) (published)"
    for spelling in ("DrQ-EPS", "drqeps", "drq_eps", "DrQ(ε)"):
        assert content(load_baseline(spelling, "atari")) == content(load_baseline("drq-eps", "atari"))
    assert {r.label for r in load_baseline("SPR 2021=spr", "atari")} == {"SPR 2021"}
    # a bundled name is not a path: a directory or file called "spr" does not get in its way
    (tmp_path / "spr").mkdir()
    assert len(load_baseline("spr", "atari")) == 2600
    with pytest.raises(FileNotFoundError, match=r"der, drq, drq-eps, spr.*path of a JSON file"):
        load_baseline("drq-epsilon", "atari")
    with pytest.raises(ValueError, match="Atari-100k"):
        load_baseline("spr", "minatar")
    write_run(tmp_path / "sweep", "atari", "pong", "drq", 0, 1.0)
    assert main(["report", str(tmp_path / "sweep"), "--baseline", "rainbow"]) == 2
    assert "der, drq, drq-eps, spr" in capsys.readouterr().err


def test_percentile_among_published_runs_by_hand():
    published = np.array([-21.0, -10.0, 0.0, 5.0])
    # strictly below + half the ties, of 4 runs
    assert [stats.percentile_among(published, s) for s in (-10.0, 20.0, 5.0, -30.0, -21.0)] == [
        37.5, 100.0, 87.5, 0.0, 12.5]
    for score in (-10.0, 2.0, 5.0):
        assert stats.percentile_among(published, score) == pytest.approx(
            scipy.stats.percentileofscore(published, score, kind="mean"))


def exact_placement_p(leave_one_out: list[list[float]], observed_mean: float) -> float:
    """The chance of a mean percentile at least as far from 50, by enumerating every combination."""
    combos = list(itertools.product(*leave_one_out))
    far = [abs(np.mean(c) - 50.0) >= abs(observed_mean - 50.0) - 1e-9 for c in combos]
    return sum(far) / len(combos)


def exact_spread_p(leave_one_out: list[list[float]], observed_spread: float) -> float:
    """The chance of a mean distance from 50 at least as large, by enumerating every combination."""
    combos = list(itertools.product(*leave_one_out))
    return sum(np.mean(np.abs(np.array(c) - 50.0)) >= observed_spread - 1e-9 for c in combos) / len(combos)


def test_percentile_placement_by_hand():
    # [0, 1, 2]: each run among the other two is below both, between, above both -> 0, 50, 100
    # two runs: their mean is 0, 25, 50, 75, 100 with chances 1, 2, 3, 2, 1 (/9)
    three = np.array([0.0, 1.0, 2.0])
    for percentiles, p in (([0.0, 0.0], 2 / 9), ([0.0, 50.0], 6 / 9), ([50.0, 50.0], 1.0)):
        result = stats.percentile_placement([three, three], percentiles, seed=1)
        assert result["p_value"] == pytest.approx(p, abs=0.005)
        assert result["mean"] == np.mean(percentiles) and result["runs"] == 2
    assert (result["low"], result["high"]) == (0.0, 100.0)  # 1/9 of the draws at either end
    # ties count one half: [5, 5, 9] -> 25, 25, 100 (mean 50); a run at 100 is as far as 0
    ties = stats.percentile_placement([np.array([5.0, 5.0, 9.0])], [100.0], seed=2)
    assert ties["p_value"] == pytest.approx(1 / 3, abs=0.005)
    # the spread: each run's distance from 50 is 50 (chance 2/3) or 0 (1/3); over two runs the
    # mean distance is 50, 25, 0 with chances 4/9, 4/9, 1/9. Runs at 0 and 100 average 50, which
    # the mean cannot tell from two runs at 50; the spread can
    for percentiles, p in (([0.0, 100.0], 4 / 9), ([0.0, 50.0], 8 / 9), ([50.0, 50.0], 1.0)):
        result = stats.percentile_placement([three, three], percentiles, seed=1)
        assert result["spread"] == np.mean(np.abs(np.array(percentiles) - 50.0))
        assert result["spread_p_value"] == pytest.approx(p, abs=0.005)
    assert (result["spread_low"], result["spread_high"]) == (0.0, 50.0)
    # in the report, a P of no draw at all is below the draws' resolution, not zero
    assert [_p_value_text(p) for p in (0.0, 0.0004, 0.0005, 0.07)] == [
        "< 0.001", "< 0.001", "0.001", "0.070"]
    with pytest.raises(ValueError, match="one published array per run"):
        stats.percentile_placement([three], [0.0, 0.0])


def test_percentile_placement_against_enumeration():
    published = [np.array([3.0, 1.0, 2.0, 2.0]), np.array([10.0, 20.0, 30.0, 40.0, 40.0]),
                 np.array([-1.0, 0.0, 7.0])]
    leave_one_out = [[100 * ((np.delete(g, i) < g[i]).mean() + 0.5 * (np.delete(g, i) == g[i]).mean())
                      for i in range(len(g))] for g in published]
    assert [np.mean(v) for v in leave_one_out] == pytest.approx([50.0, 50.0, 50.0])
    for percentiles in ([0.0, 10.0, 20.0], [80.0, 90.0, 100.0], [40.0, 50.0, 70.0]):
        result = stats.percentile_placement(published, percentiles, seed=3)
        assert result["p_value"] == pytest.approx(exact_placement_p(leave_one_out, np.mean(percentiles)),
                                                  abs=0.005)
        spread = np.mean(np.abs(np.array(percentiles) - 50.0))
        assert result["spread_p_value"] == pytest.approx(exact_spread_p(leave_one_out, spread), abs=0.005)
    every_mean = np.sort([np.mean(c) for c in itertools.product(*leave_one_out)])
    result = stats.percentile_placement(published, [50.0, 50.0, 50.0], seed=3)
    assert every_mean[0] <= result["low"] < 50.0 < result["high"] <= every_mean[-1]


def test_against_the_published_runs_by_hand(tmp_path):
    ours = {("pong", 0): -10.0, ("pong", 1): 20.0, ("breakout", 0): 4.0, ("breakout", 1): 1.0,
            ("boxing", 0): 3.0, ("boxing", 1): 5.0}
    for (game, seed), score in ours.items():
        write_run(tmp_path / "sweep", "atari", game, "drq", seed, score)
    write_run(tmp_path / "sweep", "atari", "pong", "plastic", 0, 0.0)  # plastic ran pong only
    published = {"Pong": [-21.0, -10.0, 0.0, 5.0], "Breakout": [2.0, 4.0, 4.0, 10.0],
                 "Alien": [300.0, 400.0, 500.0, 600.0]}  # alien: not run by us; boxing: not published
    baseline = tmp_path / "tiny.json"
    baseline.write_text(json.dumps(published))
    result = build_report([tmp_path / "sweep"], tmp_path / "rep", baselines=[f"Tiny={baseline}"], reps=REPS)

    comparisons = {c["label"]: c for c in result["against_published"]}
    assert set(comparisons) == {"drq", "plastic"}
    drq = comparisons["drq"]
    assert drq["games"] == ["breakout", "pong"] and drq["not_in_baseline"] == ["boxing"]
    per_game = {g["game"]: g for g in drq["per_game"]}
    # pong: -10 is above 1 of 4 runs and ties 1 -> (1 + 0.5) / 4; 20 is above all 4; the mean 5
    # is above 3 and ties 1 -> 3.5 / 4. breakout: 4 is above 1, ties 2 -> 2 / 4; 1 is below all;
    # the mean 2.5 is above 1 -> 1 / 4
    assert per_game["pong"]["percentiles"] == [37.5, 100.0] and per_game["pong"]["mean_percentile"] == 87.5
    assert per_game["breakout"]["percentiles"] == [50.0, 0.0]
    assert per_game["breakout"]["mean_percentile"] == 25.0
    assert per_game["pong"]["seeds"] == [0, 1] and per_game["breakout"]["mean_score"] == 2.5
    assert comparisons["plastic"]["per_game"][0]["percentiles"] == [62.5]  # 0 among -21, -10, 0, 5
    # where the four drq runs fall: the mean of 37.5, 100, 50, 0 against every draw of one
    # leave-one-out percentile per run (pong: 0, 1/3, 2/3, 1; breakout: 0, 1/2, 1/2, 1)
    placement = drq["placement"]
    assert (placement["runs"], placement["mean"]) == (4, 46.875)
    pong, breakout = [0.0, 100 / 3, 200 / 3, 100.0], [0.0, 50.0, 50.0, 100.0]
    assert placement["p_value"] == pytest.approx(exact_placement_p([pong, pong, breakout, breakout], 46.875),
                                                 abs=0.005)
    # distances from 50: 12.5, 50, 0, 50
    assert placement["spread"] == 28.125
    assert placement["spread_p_value"] == pytest.approx(
        exact_spread_p([pong, pong, breakout, breakout], 28.125), abs=0.005)

    # the IQMs are over the games run only: breakout and pong, not alien (nor boxing)
    def hns(game, score):
        return human_normalized_score(game, score)

    ours_matrix = np.array([[hns("breakout", ours[("breakout", s)]), hns("pong", ours[("pong", s)])]
                            for s in (0, 1)])
    theirs = np.array([[hns("breakout", b), hns("pong", p)]
                       for b, p in zip(published["Breakout"], published["Pong"])])
    assert drq["iqm"]["value"] == pytest.approx(np.sort(ours_matrix.ravel())[1:3].mean())
    assert drq["baseline_iqm"]["value"] == pytest.approx(np.sort(theirs.ravel())[2:6].mean())
    with_alien = np.column_stack([theirs, [hns("alien", a) for a in published["Alien"]]])
    assert drq["baseline_iqm"]["value"] != pytest.approx(scipy.stats.trim_mean(with_alien, 0.25, axis=None))
    expected = stats.aggregate_metrics({"drq": ours_matrix, "Tiny": theirs}, reps=REPS)
    for key in ("value", "low", "high"):
        assert drq["iqm"][key] == pytest.approx(expected["drq"]["iqm"][key])
        assert drq["baseline_iqm"][key] == pytest.approx(expected["Tiny"]["iqm"][key])
    assert (drq["iqm"]["runs"], drq["baseline_iqm"]["runs"]) == (2, 4)
    assert comparisons["plastic"]["games"] == ["pong"] and comparisons["plastic"]["baseline_iqm"]["runs"] == 4

    markdown = (tmp_path / "rep" / "report.md").read_text()
    section = markdown.split("## Against the published runs")[1].split("\n## ")[0]
    for row in ("| drq | pong | 4 | -5.00 | -10.0, 20.0 | 37.5, 100.0 | 5.00 | 87.5 |",
                "| drq | breakout | 4 | 4.00 | 4.00, 1.00 | 50.0, 0.0 | 2.50 | 25.0 |",
                "| plastic | pong | 4 | -5.00 | 0.00 | 62.5 | 0.00 | 62.5 |",
                "drq: left out, as Tiny has no runs of them: boxing", "strictly below ours + half",
                f"| drq | 4 | 46.9 | [{placement['low']:.1f}, {placement['high']:.1f}] | "
                f"{placement['p_value']:.3f} | 28.1 | [{placement['spread_low']:.1f}, "
                f"{placement['spread_high']:.1f}] | {placement['spread_p_value']:.3f} |"):
        assert row in section, row
    assert "Against the published runs" in (tmp_path / "rep" / "report.html").read_text()


def test_a_baseline_of_one_run_per_game_has_no_placement_but_a_report(tmp_path):
    write_run(tmp_path / "sweep", "atari", "pong", "drq", 0, -10.0)
    baseline = tmp_path / "means.json"
    baseline.write_text(json.dumps({"Pong": [-5.0]}))  # a paper's mean: one score per game
    result = build_report([tmp_path / "sweep"], tmp_path / "rep", baselines=[f"Means={baseline}"], reps=REPS)
    (comparison,) = result["against_published"]
    assert comparison["placement"] is None and comparison["per_game"][0]["percentiles"] == [0.0]
    markdown = (tmp_path / "rep" / "report.md").read_text()
    assert "| drq |  |  | needs 2 or more published runs of each game |  |  |  |  |" in markdown


def test_report_against_a_bundled_baseline_by_name(tmp_path):
    for seed, (pong, breakout) in enumerate([(-5.0, 20.0), (2.0, 12.0)]):
        write_run(tmp_path / "sweep", "atari", "pong", "plastic", seed, pong)
        write_run(tmp_path / "sweep", "atari", "breakout", "plastic", seed, breakout)
    assert main(["report", str(tmp_path / "sweep"), "--baseline", "DrQ-eps", "--out", str(tmp_path / "rep"),
                 "--reps", "200"]) == 0
    numbers = json.loads((tmp_path / "rep" / "aggregates.json").read_text())
    (comparison,) = numbers["against_published"]
    assert comparison["baseline"] == "DrQ(ε) (published)" and comparison["games"] == ["breakout", "pong"]
    published = json.loads(bundled_file("drq-eps").read_text())
    pong = comparison["per_game"][1]
    assert pong["published_runs"] == 100
    assert pong["mean_percentile"] == pytest.approx(scipy.stats.percentileofscore(published["Pong"], -1.5))
    theirs = np.array([[human_normalized_score("breakout", b), human_normalized_score("pong", p)]
                       for b, p in zip(published["Breakout"], published["Pong"])])
    iqm = scipy.stats.trim_mean(theirs, 0.25, axis=None)
    assert comparison["baseline_iqm"]["value"] == pytest.approx(iqm)
    assert "### DrQ(ε) (published)" in (tmp_path / "rep" / "report.md").read_text()
