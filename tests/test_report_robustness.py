"""What a user meets in ``plastic report``: unlike comparisons (budgets, env settings, published
baselines) flagged, duplicate runs counted once, one run per game said to have no CI, bars and
markers at the extremes drawn inside the frame, unreadable runs skipped with one line each."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rliable")

from plastic.configs.presets import build_config  # noqa: E402
from plastic.experiments import plots  # noqa: E402
from plastic.experiments.cli import main  # noqa: E402
from plastic.experiments.collect import (  # noqa: E402
    collect_runs,
    comparison_warnings,
    load_baseline,
)
from test_report import read_scores, write_run  # noqa: E402

REPS = "100"


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args, "--reps", REPS])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def warning_lines(err: str, *words: str) -> list[str]:
    return [line for line in err.splitlines()
            if line.startswith("plastic: warning:") and all(w in line for w in words)]


# ------------------------------------------------------------------------------- unlike budgets
def test_runs_of_different_budgets_compared_get_a_warning(tmp_path, capsys):
    for seed in (0, 1):
        write_run(tmp_path / "sweep", "minatar", "breakout", "drq", seed, 1.0 + seed, steps=600)
        write_run(tmp_path / "sweep", "minatar", "breakout", "plastic", seed, 3.0 + seed, steps=3000)
    code, _, err = report(capsys, str(tmp_path / "sweep"), "--out", str(tmp_path / "rep"))
    assert code == 0
    (line,) = warning_lines(err, "train.steps")
    assert "drq: 600" in line and "plastic: 3,000" in line
    text = line.removeprefix("plastic: warning: ")
    assert text in (tmp_path / "rep" / "report.md").read_text()
    assert text in json.loads((tmp_path / "rep" / "aggregates.json").read_text())["warnings"]

    # alike budgets: nothing to say; runs of one label made with different budgets (a config
    # that does not record train.steps): said of that label, with its values
    for seed in (0, 1):
        write_run(tmp_path / "alike", "minatar", "breakout", "drq", seed, 1.0, steps=3000)
        write_run(tmp_path / "alike", "minatar", "breakout", "plastic", seed, 2.0, steps=3000)
        write_run(tmp_path / "mixed", "minatar", "breakout", "drq", seed, 1.0, steps=600 + 2400 * seed,
                  extra_config={"train": {}})
    alike = collect_runs([tmp_path / "alike"]).runs
    assert comparison_warnings(alike, ["drq", "plastic"]) == []
    mixed = collect_runs([tmp_path / "mixed"]).runs
    (within,) = comparison_warnings(mixed, ["drq"])
    assert within.startswith("drq:") and "train.steps (breakout: 600, 3,000)" in within


def test_a_run_against_a_published_baseline_at_another_budget_gets_a_warning(tmp_path, capsys):
    for seed in (0, 1):
        write_run(tmp_path / "sweep", "atari", "pong", "drq", seed, -20.0 + seed, steps=1500)
    code, _, err = report(capsys, str(tmp_path / "sweep"), "--baseline", "drq-eps",
                          "--out", str(tmp_path / "rep"))
    assert code == 0
    (line,) = warning_lines(err, "train.steps", "DrQ(ε) (published)")
    assert "drq: 1,500" in line and "DrQ(ε) (published): 100,000" in line
    assert line.removeprefix("plastic: warning: ") in (tmp_path / "rep" / "report.md").read_text()
    # at the published budget: no warning
    for seed in (0, 1):
        write_run(tmp_path / "full", "atari", "pong", "drq", seed, -20.0 + seed, steps=100_000)
    runs = collect_runs([tmp_path / "full"]).runs + load_baseline("drq-eps", "atari")
    assert comparison_warnings(runs, ["drq", "DrQ(ε) (published)"]) == []


def write_dmc_run(root: Path, task: str, preset: str, seed: int, score: float,
                  overrides: dict | None = None) -> Path:
    """A DMC run with the config plastic builds: action repeat, agent steps and SAM's rho are
    the task's own."""
    config = build_config("dmc", task, preset, seed=seed, overrides=overrides)
    run_dir = root / task / preset / f"seed{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(config.to_json())
    steps = config.train.steps
    (run_dir / "summary.json").write_text(json.dumps({
        "suite": "dmc", "game": task, "preset": preset, "seed": seed, "score": score, "steps": steps,
        "env_steps": steps * config.env.action_repeat}))
    return run_dir


def test_dmc_tasks_own_settings_do_not_split_labels_or_warn(tmp_path, capsys):
    for task in ("walker-run", "cheetah-run"):  # action repeat 2 and 4: 1M and 500k agent steps
        for seed in (0, 1):
            write_dmc_run(tmp_path / "dmc", task, "drq", seed, 300.0 + 100 * seed)
            write_dmc_run(tmp_path / "dmc", task, "plastic", seed, 500.0 + 100 * seed)
    code, out, err = report(capsys, str(tmp_path / "dmc"), "--out", str(tmp_path / "rep"))
    assert code == 0, err
    numbers = json.loads((tmp_path / "rep" / "aggregates.json").read_text())
    assert numbers["labels"] == ["drq", "plastic"] and numbers["games"] == ["cheetah-run", "walker-run"]
    assert numbers["warnings"] == [] and "warning" not in err
    # a run of one task at another action repeat (and a short budget) is labelled by what it
    # changed, and comparing it is said to be unlike
    overrides = {"env.action_repeat": 8, "train.steps": 1000}
    config = build_config("dmc", "walker-run", "plastic", seed=2, overrides=overrides)
    run_dir = tmp_path / "dmc" / "walker-run" / "plastic" / "seed2"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(config.to_json())
    (run_dir / "summary.json").write_text(json.dumps({
        "suite": "dmc", "game": "walker-run", "preset": "plastic", "seed": 2, "score": 1.0,
        "steps": 1000, "env_steps": 8000}))
    runs = collect_runs([tmp_path / "dmc"]).runs
    labels = sorted({r.label for r in runs})
    assert labels == ["drq", "plastic", "plastic [env.action_repeat=8, train.steps=1000]"]
    warnings = comparison_warnings(runs, labels)
    (budget,) = [w for w in warnings if "env steps" in w]
    assert "on walker-run" in budget and "plastic: 2,000,000" in budget and "=1000]: 8,000" in budget
    assert any("env.action_repeat" in w for w in warnings)


def test_a_dmc_runs_default_reset_interval_at_replay_ratio_2_is_not_named_in_its_label(tmp_path):
    # the authors' profile counts the Reset interval in agent steps: 100k on walker-run at any
    # replay ratio (counted in updates it would be 200k at ratio 2)
    for seed in (0, 1):
        write_dmc_run(tmp_path / "dmc", "walker-run", "plastic", seed, 500.0,
                      overrides={"train.replay_ratio": 2})
    write_dmc_run(tmp_path / "dmc", "walker-run", "plastic", 2, 500.0,
                  overrides={"train.replay_ratio": 2, "reset.interval": 50_000})
    runs = collect_runs([tmp_path / "dmc"]).runs
    assert runs[0].config["reset.interval_unit"] == "agent_steps"
    assert sorted(r.label for r in runs) == ["plastic", "plastic", "plastic [reset.interval=50000]"]


# -------------------------------------------------------------------------------- duplicate runs
def test_a_resumed_copy_beside_the_original_counts_once(tmp_path, capsys):
    for seed in (0, 1):
        write_run(tmp_path / "a", "minatar", "breakout", "drq", seed, 1.0 + seed)
    original = tmp_path / "a" / "breakout" / "drq" / "seed0"
    copy = tmp_path / "b" / "breakout" / "drq" / "seed0"
    shutil.copytree(original, copy)
    summary = json.loads((copy / "summary.json").read_text())
    (copy / "summary.json").write_text(json.dumps({**summary, "score": 7.0}))
    os.utime(original / "summary.json", (1_000_000, 1_000_000))  # the copy finished later
    code, _, err = report(capsys, str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "rep"))
    assert code == 0
    rows = read_scores(tmp_path / "rep" / "scores.csv")
    assert sorted((r["seed"], r["path"], float(r["score"])) for r in rows) == [
        ("0", str(copy), 7.0), ("1", str(tmp_path / "a" / "breakout" / "drq" / "seed1"), 2.0)]
    (line,) = warning_lines(err, "seed 0", "counted once")
    assert str(original) in line and str(copy) in line
    assert line.index(str(copy)) < line.index("leaving out") < line.index(str(original))
    markdown = (tmp_path / "rep" / "report.md").read_text()
    assert "2 finished runs" in markdown and line.removeprefix("plastic: warning: ") in markdown

    # the copy that trained further wins over one that finished later (a config that does not
    # record train.steps, so both carry the same label)
    for name, steps, when in (("long", 3000, 1_000_000), ("short", 600, 2_000_000)):
        run_dir = write_run(tmp_path / name, "minatar", "breakout", "drq", 0, 1.0, steps=steps,
                            extra_config={"train": {}})
        os.utime(run_dir / "summary.json", (when, when))
    found = collect_runs([tmp_path / "long", tmp_path / "short"])
    (run,) = found.runs
    assert run.summary["steps"] == 3000 and "trained furthest" in found.warnings[0]


# ---------------------------------------------------------------------------- one run per game
def test_one_run_per_game_is_said_to_have_no_confidence_interval(tmp_path, capsys):
    for game in ("breakout", "asterix"):
        write_run(tmp_path / "sweep", "minatar", game, "drq", 0, 2.0)
        for seed in (0, 1):
            write_run(tmp_path / "sweep", "minatar", game, "plastic", seed, 3.0 + seed)
    code, out, err = report(capsys, str(tmp_path / "sweep"), "--out", str(tmp_path / "rep"))
    assert code == 0
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if "IQM" in line}
    assert lines["drq"].endswith("(1 run: no confidence interval)") and "[" not in lines["drq"]
    assert "[" in lines["plastic"] and "no confidence interval" not in lines["plastic"]
    (line,) = warning_lines(err, "no confidence interval")
    assert line.startswith("plastic: warning: drq: 1 run per game")
    markdown = (tmp_path / "rep" / "report.md").read_text()
    (row,) = [r for r in markdown.splitlines() if r.startswith("| drq | 1 × 2 |")]
    assert row.count("(1 run: no CI)") == 4 and "[" not in row
    (poi,) = [r for r in markdown.splitlines() if r.startswith("| plastic | drq |")]
    assert "1 run of drq" in poi


# ------------------------------------------------------------------------------------- figures
def test_bars_and_markers_at_the_extremes_are_inside_the_frame(tmp_path, capsys, monkeypatch):
    figures = {}
    save = plots._save

    def keep(fig, path):
        figures[Path(path).name] = fig
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    # min-max normalised: drq's runs at 0 and 0.1, plastic's at 0.9 and 1 on both games; plastic
    # beats drq on every pair, P = 1 [1, 1]
    for game in ("breakout", "asterix"):
        for seed in (0, 1):
            write_run(tmp_path / "sweep", "minatar", game, "drq", seed, 1.0 + seed)
            write_run(tmp_path / "sweep", "minatar", game, "plastic", seed, 10.0 + seed)
    code, _, _ = report(capsys, str(tmp_path / "sweep"), "--out", str(tmp_path / "rep"))
    assert code == 0
    numbers = json.loads((tmp_path / "rep" / "aggregates.json").read_text())
    assert numbers["aggregates"]["drq"]["iqm"]["low"] == 0.0  # a bar starting at the lowest value

    def strictly_inside(x: float, limits: tuple[float, float]) -> bool:
        return limits[0] < x < limits[1]

    for ax in figures["aggregates.png"].axes:
        limits = ax.get_xlim()
        bars = [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches]
        ticks = [x for c in ax.collections for segment in c.get_segments() for x in segment[:, 0]]
        assert len(bars) == 2 and len(ticks) == 4, ax.get_title()
        for x in [x for bar in bars for x in bar] + ticks:
            assert strictly_inside(x, limits), (ax.get_title(), x, limits)
        extent = max(x for bar in bars for x in bar) - min(x for bar in bars for x in bar)
        assert extent > 0.7 * (limits[1] - limits[0])  # room at the sides, not a shrunken plot
    (ax,) = figures["probability_of_improvement.png"].axes
    (pair,) = numbers["probability_of_improvement"]
    assert pair["value"] == pair["low"] == pair["high"] == 1.0
    markers = [x for c in ax.collections for segment in c.get_segments() for x in segment[:, 0]]
    assert markers and all(strictly_inside(x, ax.get_xlim()) for x in markers)
    (ax,) = figures["performance_profiles.png"].axes
    heights = np.concatenate([line.get_ydata() for line in ax.lines])
    assert heights.min() == 0.0 and heights.max() == 1.0
    assert strictly_inside(0.0, ax.get_ylim()) and strictly_inside(1.0, ax.get_ylim())


# ----------------------------------------------------------------------------- unreadable runs
def test_unreadable_runs_are_skipped_and_a_torn_last_row_dropped(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    evals = [(300, 1.0), (600, 2.0), (1000, 3.0)]
    for seed in (0, 1):
        for preset in ("drq", "plastic"):
            write_run(sweep, "minatar", "breakout", preset, seed, 3.0 + seed, evals=evals)
    truncated = write_run(sweep, "minatar", "breakout", "drq", 2, 4.0, evals=evals)
    text = (truncated / "summary.json").read_text()
    (truncated / "summary.json").write_text(text[: len(text) // 2])
    torn = write_run(sweep, "minatar", "breakout", "plastic", 2, 5.0, evals=evals)
    with (torn / "eval.csv").open("a") as f:
        f.write("1200,4.")  # the last row, cut short while being written
    damaged = write_run(sweep, "minatar", "breakout", "plastic", 3, 5.0)
    lines = (damaged / "episodes.csv").read_text().splitlines()
    lines[2] = "200,2,0.x,100"
    (damaged / "episodes.csv").write_text("\n".join(lines) + "\n")
    (sweep / "sweep_status.json").write_text('{"runs": {"breakout/drq/seed0": {"sta')

    code, _, err = report(capsys, str(sweep), "--out", str(tmp_path / "rep"))
    assert code == 0, err
    (line,) = warning_lines(err, str(truncated))
    assert "summary.json is not valid JSON" in line
    (line,) = warning_lines(err, str(damaged))
    assert "episodes.csv line 3" in line and "return = '0.x'" in line
    (line,) = warning_lines(err, str(torn / "eval.csv"), "torn last row")
    assert "line 5" in line
    assert warning_lines(err, "sweep_status.json")
    rows = read_scores(tmp_path / "rep" / "scores.csv")
    assert sorted((r["label"], r["seed"]) for r in rows) == [
        ("drq", "0"), ("drq", "1"), ("plastic", "0"), ("plastic", "1"), ("plastic", "2")]
    numbers = json.loads((tmp_path / "rep" / "aggregates.json").read_text())
    assert numbers["iqm_curves"]["plastic"]["steps"] == [300, 600, 1000]
    assert {s["path"] for s in numbers["skipped"]} == {str(truncated), str(damaged)}
    markdown = (tmp_path / "rep" / "report.md").read_text()
    assert "4 finished runs" not in markdown and "5 finished runs" in markdown
    assert f"unreadable, skipped: `{truncated}`" in markdown and "2 unreadable and skipped" in markdown


def test_a_report_of_unreadable_runs_only_names_them(tmp_path, capsys):
    run_dir = write_run(tmp_path / "sweep", "minatar", "breakout", "drq", 0, 1.0)
    (run_dir / "summary.json").write_text('{"suite": "minatar", "sco')
    code, _, err = report(capsys, str(tmp_path / "sweep"))
    assert code == 2
    assert "no readable finished runs" in err and str(run_dir) in err and "not valid JSON" in err


def test_torn_rows_by_hand(tmp_path):
    from plastic.experiments.collect import UnreadableRunError, read_metrics_csv

    path = tmp_path / "eval.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["step", "score"], [100, 1.5], [200, ""]])
    assert read_metrics_csv(path)[0][0] == {"step": 100.0, "score": 1.5}
    assert np.isnan(read_metrics_csv(path)[0][1]["score"]) and read_metrics_csv(path)[1] == []
    path.write_text(path.read_text() + "30")
    rows, warnings = read_metrics_csv(path)
    assert len(rows) == 2 and "1 of 2 cells" in warnings[0]
    path.write_text("step,score\n100,1.5\n2oo,3\n300,4\n")
    with pytest.raises(UnreadableRunError, match="line 3 is damaged"):
        read_metrics_csv(path)
