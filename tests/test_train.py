"""End to end: every preset on a real ALE game, kill-and-resume equals an uninterrupted run,
finished runs are not redone, bad input gets clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from plastic.cli import main
from plastic.configs import build_config
from plastic.train.logger import read_csv
from plastic.train.loop import ConfigMismatchError, train
from run_helpers import killed_and_straight_runs

TINY_ATARI = {
    "train.steps": 160, "train.learning_starts": 120, "train.replay_ratio": 0.25,
    "agent.batch_size": 4, "agent.replay_capacity": 1000, "train.eval_episodes": 1,
    "train.eval_envs": 1, "env.max_episode_steps": 60, "train.log_interval": 40,
    "train.metrics_interval": 150, "train.checkpoint_interval": 100, "reset.interval": 5,
}
PRESETS = ["drq", "plastic", "plastic-dagger", "drq+ln", "drq+sam", "drq+crelu", "drq+reset"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_runs_on_a_real_atari_game(tmp_path, preset):
    config = build_config("atari", "breakout", preset, overrides=TINY_ATARI)
    summary = train(config, tmp_path, progress=False)
    for name in ("config.json", "summary.json", "final_model.pt", "episodes.csv", "train.csv",
                 "plasticity.csv", "eval.csv"):
        assert (tmp_path / name).exists(), name
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert not (tmp_path / "checkpoint.pt").exists()
    assert summary["steps"] == 160 and summary["updates"] == 10
    assert summary["resets"] == (2 if "reset" in config.preset or config.reset.enabled else 0)
    assert "human_normalized_score" in summary and summary["episodes"] == 1
    train_rows = read_csv(tmp_path / "train.csv")
    assert [r["step"] for r in train_rows] == [40, 80, 120, 160]
    assert train_rows[-1]["updates"] == 10 and train_rows[-1]["loss"] > 0
    plasticity = read_csv(tmp_path / "plasticity.csv")[0]
    assert 0 < plasticity["encoder_active"] <= 1 and 0 < plasticity["head_active"] <= 1
    assert json.loads((tmp_path / "config.json").read_text())["preset"] == preset


RESUME_ARGS = [
    "train", "minatar", "--game", "breakout", "--preset", "plastic", "--steps", "1500",
    "--no-progress", "--set", "train.learning_starts=200", "--set", "train.replay_ratio=1",
    "--set", "agent.batch_size=8", "--set", "train.checkpoint_interval=300",
    "--set", "train.eval_episodes=2", "--set", "reset.interval=500",
    "--set", "train.log_interval=100", "--set", "train.metrics_interval=700",
    "--set", "agent.replay_capacity=2000", "--set", "train.threads=1",
]


def test_killed_run_resumes_to_the_same_parameters(tmp_path):
    killed, straight = killed_and_straight_runs(RESUME_ARGS, tmp_path)

    a = torch.load(killed / "final_model.pt")["online"]
    b = torch.load(straight / "final_model.pt")["online"]
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (killed, straight))
    assert sa["returns"] == sb["returns"] and sa["resets"] == sb["resets"] == 2
    assert read_csv(killed / "episodes.csv") == read_csv(straight / "episodes.csv")
    steps = [r["step"] for r in read_csv(killed / "train.csv")]
    assert steps == sorted(set(steps))  # rows after the checkpoint were not duplicated


def test_finished_run_is_not_redone_and_other_config_is_refused(tmp_path, capsys):
    overrides = {**TINY_ATARI, "train.steps": 130}
    config = build_config("minatar", "breakout", "drq", overrides=overrides)
    first = train(config, tmp_path, progress=False)
    stamp = (tmp_path / "summary.json").stat().st_mtime_ns
    again = train(config, tmp_path, progress=False)
    assert again == first and (tmp_path / "summary.json").stat().st_mtime_ns == stamp
    assert "already finished" in capsys.readouterr().err
    other = build_config("minatar", "breakout", "drq", overrides={**overrides, "sam.rho": 0.3})
    with pytest.raises(ConfigMismatchError, match="sam.rho: run has 0.1, asked 0.3"):
        train(other, tmp_path, progress=False)


def test_cli_errors_name_the_valid_choices(tmp_path, capsys):
    assert main(["train", "atari", "--game", "nosuchgame", "--run-dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "nosuchgame" in err and "ms_pacman" in err and "up_n_down" in err
    assert not (tmp_path / "a").exists()
    assert main(["train", "minatar", "--game", "breakout", "--set", "sam.rhoo=1"]) == 2
    assert "valid keys" in capsys.readouterr().err
    assert main(["train", "minatar", "--game", "pong"]) == 2
    assert "space_invaders" in capsys.readouterr().err
