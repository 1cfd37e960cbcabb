"""`plastic evaluate RUN_DIR`: a tiny MinAtar run trained for real, then played again from its
final model (and from a checkpoint of an unfinished run), with a video of its first game."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch

from plastic.cli import main
from plastic.configs import build_config
from plastic.envs import make_env
from plastic.suites import get_suite
from plastic.train.evaluate import play_games
from plastic.train.evaluate_cli import evaluate_run
from plastic.train.loop import Trainer, train

TINY_MINATAR = {
    "train.steps": 300, "train.learning_starts": 100, "train.replay_ratio": 0.25,
    "agent.batch_size": 8, "agent.replay_capacity": 1000, "train.eval_episodes": 2,
    "train.eval_envs": 2, "env.max_episode_steps": 100, "train.log_interval": 100,
    "train.metrics_interval": 0, "train.checkpoint_interval": 0, "train.threads": 1,
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished")
    config = build_config("minatar", "breakout", "drq", seed=3, overrides=TINY_MINATAR)
    train(config, run_dir, progress=False)
    return run_dir, config


def direct_returns(config, networks, episodes: int, seed: int) -> list[float]:
    """The agent of ``config`` with ``networks`` loaded by hand, played by the loop's evaluate()."""
    runtime = get_suite(config.suite)
    env = make_env(config.suite, config.game, 0, train=False, **runtime.env_kwargs(config))
    agent = runtime.agent.build(config, env.observation_space.shape, env.action_space, torch.device("cpu"))
    agent.online.load_state_dict(networks["online"])
    agent.target.load_state_dict(networks["target"])
    kwargs = runtime.env_kwargs(config)
    return play_games(lambda obs: agent.act(obs, evaluate=True),
                      lambda s: make_env(config.suite, config.game, s, train=False, **kwargs),
                      episodes, config.train.eval_envs, seed=seed).returns


def test_evaluate_plays_the_runs_agent_and_writes_a_video(finished_run, tmp_path, capsys):
    from PIL import Image

    run_dir, config = finished_run
    video = tmp_path / "breakout.gif"
    assert main(["evaluate", str(run_dir), "--episodes", "3", "--video", str(video)]) == 0
    out = capsys.readouterr().out
    printed = float(re.search(r"mean score (\S+) over 3 games", out).group(1))
    expected = direct_returns(config, torch.load(run_dir / "final_model.pt"), 3, seed=3)
    assert printed == pytest.approx(np.mean(expected), abs=0.005)
    assert "final_model.pt" in out and "the run's final evaluation scored" in out

    steps = int(re.search(r"video: .*breakout\.gif \((\d+) steps of the first game", out).group(1))
    with Image.open(video) as gif:
        assert 1 < gif.n_frames <= steps and gif.size == (160, 160)  # 10x10 board, 16-pixel cells
        pictures, shown_ms = [], 0
        for index in range(gif.n_frames):  # identical consecutive steps are one frame shown longer
            gif.seek(index)
            pictures.append(np.asarray(gif.convert("RGB")))
            shown_ms += gif.info["duration"]
    assert shown_ms == pytest.approx(steps * 1000 / 15, rel=0.15)  # every step, at 15 fps
    assert not np.array_equal(pictures[0], pictures[-1])  # the game moves
    assert {tuple(c) for c in pictures[0].reshape(-1, 3)} > {(0, 0, 0)}  # a drawn board, not black
    # Recording the first game changes nothing in the games; another seed plays other games.
    again = evaluate_run(run_dir, episodes=3)
    assert again["returns"] == expected and again["video"] is None
    assert f"longest game {max(again['lengths'])} steps;" in out and len(again["lengths"]) == 3
    assert evaluate_run(run_dir, episodes=3, seed=4)["returns"] == direct_returns(
        config, torch.load(run_dir / "final_model.pt"), 3, seed=4)


def test_evaluate_an_unfinished_run_from_its_checkpoint(finished_run, tmp_path, monkeypatch, capsys):
    """Killed after its last checkpoint (step 300) before finishing: the checkpoint's agent is the
    finished run's (training is deterministic on CPU), so it plays the same games."""
    run_dir, config = finished_run

    def killed(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_finish", killed)
    unfinished = tmp_path / "unfinished"
    checkpointed = build_config("minatar", "breakout", "drq", seed=3,
                                overrides={**TINY_MINATAR, "train.checkpoint_interval": 300})
    with pytest.raises(KeyboardInterrupt):
        train(checkpointed, unfinished, progress=False)
    assert (unfinished / "checkpoint.pt").exists() and not (unfinished / "final_model.pt").exists()
    assert main(["evaluate", str(unfinished), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "checkpoint.pt at step 300" in out
    assert evaluate_run(unfinished, episodes=2)["returns"] == evaluate_run(run_dir, episodes=2)["returns"]


def test_evaluate_errors_are_one_line(finished_run, tmp_path, capsys):
    run_dir, _ = finished_run
    bare = tmp_path / "bare"
    shutil.copytree(run_dir, bare)
    (bare / "final_model.pt").unlink()
    (tmp_path / "unstarted").mkdir()  # a run that has not reached its first checkpoint
    (tmp_path / "unstarted" / "config.json").write_text((run_dir / "config.json").read_text())
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text((run_dir / "config.json").read_text())
    (tmp_path / "junk" / "final_model.pt").write_bytes(b"not a model")
    for name, content in (("foreign", {"online": {}, "target": {}}), ("checkpointed", {"agent": {}})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text((run_dir / "config.json").read_text())
        torch.save(content, tmp_path / name / ("final_model.pt" if name == "foreign" else "checkpoint.pt"))
    cases = [
        ([str(tmp_path)], "config.json not found"),
        ([str(bare)], "holds a finished run's records (summary.json) but not its model (final_model.pt)"),
        ([str(tmp_path / "unstarted")], "has neither final_model.pt nor checkpoint.pt"),
        ([str(tmp_path / "junk")], "final_model.pt cannot be read"),
        ([str(tmp_path / "foreign")], "final_model.pt does not hold the networks of the run's config.json"),
        ([str(tmp_path / "checkpointed")], "checkpoint.pt does not hold an agent of the run's config.json"),
        ([str(run_dir), "--video", str(tmp_path / "game.mp4")], "only animated GIFs"),
        ([str(run_dir), "--episodes", "0"], "--episodes must be at least 1"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(["evaluate", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def test_a_run_trained_with_the_cuda_graph_is_evaluated_on_the_cpu(finished_run, tmp_path):
    """`train.cuda_graph` speeds up training on a GPU; evaluating such a run on a CPU machine plays
    it eagerly (it was refused: 'train.cuda_graph needs a CUDA device'), the same games."""
    import json

    run_dir, _ = finished_run
    graphed = tmp_path / "graphed"
    shutil.copytree(run_dir, graphed)
    config = json.loads((graphed / "config.json").read_text())
    config["train"]["cuda_graph"] = True
    (graphed / "config.json").write_text(json.dumps(config))
    played = evaluate_run(graphed, episodes=2, device="cpu")["returns"]
    assert played == evaluate_run(run_dir, episodes=2)["returns"]


def test_by_default_the_final_evaluations_start_states_are_played_again(tmp_path, monkeypatch, capsys):
    # intermediate evaluations each drew fresh start states; the final one was the run's last
    overrides = {**TINY_MINATAR, "train.eval_interval": 100, "agent.eval_epsilon": 0.0}
    config = build_config("minatar", "breakout", "drq", seed=5, overrides=overrides)
    summary = train(config, tmp_path / "run", progress=False)
    logged = (tmp_path / "run" / "eval.csv").read_text().splitlines()[1:]
    assert summary["evaluation_index"] == len(logged) - 1 >= 2

    import plastic.train.evaluate as evaluate_module

    indices = []

    def recording(*args, index=0, **kwargs):
        indices.append(index)
        return play_games(*args, index=index, **kwargs)

    monkeypatch.setattr(evaluate_module, "play_games", recording)
    again = evaluate_run(tmp_path / "run")
    assert indices == [summary["evaluation_index"]]
    assert again["returns"] == summary["returns"]  # greedy: the same games, the same scores
    assert "the run's final evaluation's start states" in again["line"]
    evaluate_run(tmp_path / "run", seed=5)  # another seed (even the run's own) plays from index 0
    assert indices[-1] == 0
