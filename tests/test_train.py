"""End to end: every preset on a real ALE game, kill-and-resume equals an uninterrupted run,
finished runs are not redone, logs and evaluations are what the protocol says, bad input gets
clear errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from plastic.cli import main
from plastic.configs import Config, build_config
from plastic.configs.presets import ALIASES
from plastic.envs.atari import make_atari_env
from plastic.replay.buffer import ReplayBuffer
from plastic.train.checkpoint import load_checkpoint, write_json
from plastic.train.evaluate import evaluation_seeds, play_games
from plastic.train.logger import RunLogger, read_csv
from plastic.train.loop import TIME_PARTS, ConfigMismatchError, Trainer, check_run_dir, train
from run_helpers import RESUME_ARGS, kill_after_first_checkpoint, killed_and_straight_runs

TINY_ATARI = {
    "train.steps": 320, "train.learning_starts": 240, "train.replay_ratio": 0.25,
    "agent.batch_size": 4, "agent.replay_capacity": 1000, "train.eval_episodes": 1,
    "train.eval_envs": 1, "env.max_episode_steps": 100, "train.log_interval": 40,
    "train.metrics_interval": 280, "train.checkpoint_interval": 160, "reset.interval": 8,
}
PRESETS = ["drq", "plastic", "plastic-dagger", "drq+ln", "drq+sam", "drq+crelu", "drq+reset"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_runs_on_a_real_atari_game(tmp_path, preset):
    config = build_config("atari", "breakout", preset, overrides=TINY_ATARI)
    started = time.perf_counter()
    summary = train(config, tmp_path, progress=False)
    elapsed = time.perf_counter() - started
    for name in ("config.json", "summary.json", "final_model.pt", "episodes.csv", "train.csv",
                 "plasticity.csv", "eval.csv"):
        assert (tmp_path / name).exists(), name
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert not (tmp_path / "checkpoint.pt").exists()  # kept only with train.keep_final_checkpoint
    # Updates after step 240, one every 4th step (ratio 0.25): at steps 244, 248, ..., 320.
    assert summary["steps"] == 320 and summary["updates"] == 20
    train_rows = read_csv(tmp_path / "train.csv")
    assert [(r["step"], r["updates"]) for r in train_rows] == [
        (step, max(0, (step - 240) // 4)) for step in range(40, 321, 40)]
    assert train_rows[-1]["loss"] > 0 and all(r["env_steps"] == r["step"] for r in train_rows)
    # A reset every 8 updates: at updates 8 and 16, i.e. steps 240 + 4·8 and 240 + 4·16.
    resets = [(r["step"], r["updates"]) for r in read_csv(tmp_path / "resets.csv")] \
        if (tmp_path / "resets.csv").exists() else []
    assert resets == ([(272, 8), (304, 16)] if "reset" in ALIASES.get(preset, preset) else [])
    assert summary["resets"] == len(resets)
    # Whole games of up to 101 steps: the authors' horizon ends a game on its 101st step.
    episodes = read_csv(tmp_path / "episodes.csv")
    assert len(episodes) >= 3 and all(e["length"] <= 101 for e in episodes)
    assert "human_normalized_score" in summary and summary["episodes"] == 1
    # Where the time went: every part was run (checkpoints at 160 and 320, metrics at 280), the
    # loop's parts fit in its wall time, and the total (with the final evaluation) in the call's.
    time_spent = summary["time"]
    assert set(time_spent) == {*TIME_PARTS, "other", "total"}
    assert all(time_spent[part] > 0 for part in TIME_PARTS), time_spent
    loop_parts = sum(time_spent[part] for part in TIME_PARTS) + time_spent["other"]
    final_evaluation = time_spent["total"] - summary["wall_seconds"]
    assert 0 < final_evaluation <= time_spent["evaluation"] + 1e-3
    assert loop_parts - final_evaluation == pytest.approx(summary["wall_seconds"], abs=5e-3)
    assert summary["wall_seconds"] < time_spent["total"] <= elapsed
    plasticity = read_csv(tmp_path / "plasticity.csv")
    assert [r["step"] for r in plasticity] == [280]
    assert 0 < plasticity[0]["encoder_active"] <= 1 and 0 < plasticity[0]["head_active"] <= 1
    networks = torch.load(tmp_path / "final_model.pt")
    assert networks["online"].keys() == networks["target"].keys()
    assert json.loads((tmp_path / "config.json").read_text())["preset"] == preset


# Killed at its first checkpoint (step 200, mid-game, before any update) with 40 updates to go.
ATARI_RESUME_ARGS = [
    "train", "atari", "--game", "breakout", "--preset", "plastic", "--steps", "360",
    "--no-progress", "--set", "train.learning_starts=200", "--set", "train.replay_ratio=0.25",
    "--set", "agent.batch_size=4", "--set", "agent.replay_capacity=1000",
    "--set", "train.checkpoint_interval=200", "--set", "train.eval_episodes=1",
    "--set", "train.eval_envs=1", "--set", "env.max_episode_steps=150", "--set", "reset.interval=15",
    "--set", "train.log_interval=40", "--set", "train.metrics_interval=280",
    "--set", "train.threads=1",
]
WALL_CLOCK = ("steps_per_s", "updates_per_s")


def logged(run_dir: Path, stream: str) -> list[dict[str, float]]:
    """A CSV stream's rows without its wall-clock columns."""
    rows = read_csv(run_dir / f"{stream}.csv")
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in rows]


def assert_same_runs(killed: Path, straight: Path, streams: tuple[str, ...]) -> None:
    a = torch.load(killed / "final_model.pt")
    b = torch.load(straight / "final_model.pt")
    for network in ("online", "target"):
        for key in a[network]:
            assert torch.equal(a[network][key], b[network][key]), (network, key)  # bit for bit on CPU
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (killed, straight))
    assert sa["returns"] == sb["returns"] and sa["resets"] == sb["resets"] == 2
    for stream in streams:
        rows = logged(killed, stream)
        assert rows == logged(straight, stream), stream  # no row lost or logged twice


@pytest.mark.filterwarnings("ignore:train.precision=bf16")  # emulated on CPUs without bf16: said
@pytest.mark.parametrize(("fidelity", "precision"), [("authors", "fp32"), ("intent", "fp32"),
                                                     ("authors", "bf16"), ("authors", "fp16")])
def test_killed_run_resumes_to_the_same_parameters(tmp_path, fidelity, precision):
    args = [*RESUME_ARGS, "--set", f"fidelity={fidelity}", "--set", f"train.precision={precision}"]
    killed, straight = killed_and_straight_runs(args, tmp_path)
    assert json.loads((killed / "config.json").read_text())["sam"]["all_after_reset"] == (
        fidelity == "authors")
    assert_same_runs(killed, straight, ("episodes", "train", "eval", "plasticity", "resets"))


def test_killed_atari_run_resumes_to_the_same_parameters(tmp_path):
    # Its checkpoint holds the replay's frames raw (train.compress_replay=false, as plastic wrote
    # them before compressing); the resumed process compresses its own (the MinAtar runs above
    # checkpoint compressed frames and resume from them).
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    kill_after_first_checkpoint([*ATARI_RESUME_ARGS, "--set", "train.compress_replay=false"], killed)
    assert isinstance(load_checkpoint(killed / "checkpoint.pt")["replay"]["frames"], torch.Tensor)
    keep = ("--set", "train.keep_final_checkpoint=true")
    assert main([*ATARI_RESUME_ARGS, *keep, "--run-dir", str(killed)]) == 0
    assert main([*ATARI_RESUME_ARGS, "--run-dir", str(straight)]) == 0
    assert "zlib_chunks" in load_checkpoint(killed / "checkpoint.pt")["replay"]["frames"]
    segments = json.loads((killed / "summary.json").read_text())["provenance"]
    assert len(segments) == 2 and 0 < segments[1]["from_step"] < 360, segments  # it resumed
    config = json.loads((killed / "config.json").read_text())  # the paper's preset: the authors' update
    assert config["fidelity"] == "authors" and config["sam"]["perturbed_pass"] == "fresh"
    assert_same_runs(killed, straight, ("episodes", "train", "eval", "plasticity", "resets"))
    assert [r["step"] for r in read_csv(killed / "resets.csv")] == [260, 320]  # updates 15 and 30


TINY_MINATAR = {
    "train.steps": 300, "train.learning_starts": 100, "train.replay_ratio": 0.25,
    "agent.batch_size": 8, "agent.replay_capacity": 1000, "train.eval_episodes": 1,
    "train.eval_envs": 1, "env.max_episode_steps": 100, "train.log_interval": 50,
    "train.metrics_interval": 0, "train.checkpoint_interval": 0,
}


class SimulatedKillError(Exception):
    pass


def kill_at_step(config: Config, run_dir: Path, step: int) -> None:
    """Run ``config`` in ``run_dir`` until it dies at agent step ``step``, without a summary."""
    real_step = Trainer._env_step

    def dying_step(self):
        if self.state.step == step:
            raise SimulatedKillError
        real_step(self)

    Trainer._env_step = dying_step
    try:
        with pytest.raises(SimulatedKillError):
            train(config, run_dir, progress=False)
    finally:
        Trainer._env_step = real_step


def test_run_killed_before_its_first_checkpoint_starts_its_logs_afresh(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = build_config("minatar", "breakout", "drq+reset", overrides={
        **TINY_MINATAR, "reset.interval": 10, "train.eval_interval": 100, "train.metrics_interval": 100})
    kill_at_step(config, tmp_path / "killed", 250)
    assert not (tmp_path / "killed" / "checkpoint.pt").exists()
    assert [r["step"] for r in read_csv(tmp_path / "killed" / "eval.csv")] == [100, 200]
    for run in ("killed", "straight"):
        train(config, tmp_path / run, progress=False)

    killed, straight = tmp_path / "killed", tmp_path / "straight"
    for stream in ("episodes", "train", "eval", "plasticity", "resets"):
        steps = [r["step"] for r in read_csv(killed / f"{stream}.csv")]
        assert steps == sorted(set(steps)) and steps, stream
        assert logged(killed, stream) == logged(straight, stream), stream

    def tensorboard_steps(run_dir: Path) -> list[int]:
        events = EventAccumulator(str(run_dir / "tb"))
        events.Reload()
        return [e.step for e in events.Scalars("train/updates")]

    assert tensorboard_steps(killed) == tensorboard_steps(straight) == list(range(50, 301, 50))


def test_cpu_time_leaves_out_waiting_and_is_kept_across_a_resume(tmp_path, monkeypatch):
    """summary.json's "cpu_time" is what the process computed: a step that sleeps (as a run stopped
    by SIGSTOP, or waiting for a core) adds wall time only, and the CPU time before the checkpoint
    a run resumed from is counted."""
    config = build_config("minatar", "breakout", "drq", overrides={
        **TINY_MINATAR, "train.checkpoint_interval": 100, "train.threads": 1})
    real_step = Trainer._env_step

    def step_with_extra_time(self):
        started = time.process_time()
        if self.state.step < 100:  # before the checkpoint: 5 ms of computing a step
            while time.process_time() - started < 0.005:
                pass
        else:  # after it: 2 ms of waiting a step
            time.sleep(0.002)
        real_step(self)

    monkeypatch.setattr(Trainer, "_env_step", step_with_extra_time)
    kill_at_step(config, tmp_path, 150)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["loop"]["step"] == 100
    assert checkpoint["loop"]["part_cpu_seconds"]["acting"] >= 100 * 0.005
    summary = train(config, tmp_path, progress=False)  # resumed from step 100
    wall, cpu = summary["time"], summary["cpu_time"]
    assert set(cpu) == set(wall) == {*TIME_PARTS, "other", "total"}
    assert cpu["acting"] >= 100 * 0.005  # the first process's computing, from the checkpoint
    assert wall["acting"] - cpu["acting"] >= 200 * 0.002 * 0.9  # the resumed steps' waiting is not in it
    assert cpu["updates"] > 0 and cpu["evaluation"] > 0
    assert cpu["total"] == pytest.approx(sum(cpu[part] for part in TIME_PARTS) + cpu["other"], abs=5e-3)
    assert cpu["total"] < wall["total"]


def test_a_checkpoint_on_the_update_of_a_reset_resumes_to_the_same_run(tmp_path):
    """Update 10 (step 140) is followed by a Reset, which shrinks the encoder too, then by the
    checkpoint; the run dies after it. Resumed, it makes the same Resets as a run never stopped."""
    config = build_config("minatar", "breakout", "plastic", overrides={
        **TINY_MINATAR, "reset.interval": 10, "train.checkpoint_interval": 140,
        "reset.encoder_shrink_min_replay_ratio": 0.25, "train.metrics_interval": 100,
        "train.log_interval": 20})  # a checkpoint between two rows: tests/test_stop.py
    kill_at_step(config, tmp_path / "killed", 150)
    checkpoint = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    assert (checkpoint["loop"]["step"], checkpoint["agent"]["updates"]) == (140, 10)
    assert checkpoint["loop"]["resets"] == 1
    for run in ("killed", "straight"):
        train(config, tmp_path / run, progress=False)
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    provenance = json.loads((killed / "summary.json").read_text())["provenance"]
    assert [segment["from_step"] for segment in provenance] == [0, 140]  # went on from the checkpoint
    assert [(r["step"], r["updates"]) for r in read_csv(killed / "resets.csv")] == [
        (100 + 4 * n, n) for n in (10, 20, 30, 40, 50)]
    assert_same_runs_exactly(killed, straight, ("episodes", "train", "eval", "plasticity", "resets"))


def assert_same_runs_exactly(a: Path, b: Path, streams: tuple[str, ...]) -> None:
    networks_a, networks_b = torch.load(a / "final_model.pt"), torch.load(b / "final_model.pt")
    for network in ("online", "target"):
        for key in networks_a[network]:
            assert torch.equal(networks_a[network][key], networks_b[network][key]), (network, key)
    summary_a, summary_b = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert summary_a["returns"] == summary_b["returns"] and summary_a["resets"] == summary_b["resets"]
    for stream in streams:
        assert logged(a, stream) == logged(b, stream), stream


def test_logging_keys_may_differ_on_resume_other_keys_are_refused(tmp_path):
    config = build_config("minatar", "breakout", "drq", overrides=TINY_MINATAR)
    saved = config.to_dict()
    del saved["env"]["repeat_action_probability"]  # as a run from before the key existed
    write_json(tmp_path / "config.json", saved)
    logging_only = {"train.log_interval": 7, "train.threads": 1, "train.wandb_project": "x",
                    "train.checkpoint_interval": 9, "train.metrics_interval": 3, "device": "cpu"}
    relogged = build_config("minatar", "breakout", "drq", overrides={**TINY_MINATAR, **logging_only})
    assert check_run_dir(tmp_path, relogged) == "resume"
    other = build_config("minatar", "breakout", "drq", overrides={
        **TINY_MINATAR, **logging_only, "agent.lr": 1e-3, "train.eval_episodes": 3})
    with pytest.raises(ConfigMismatchError) as error:
        check_run_dir(tmp_path, other)
    message = str(error.value)
    assert "agent.lr: run has 0.0001414, asked 0.001" in message
    assert "train.eval_episodes: run has 1, asked 3" in message
    assert not any(key in message for key in logging_only)


def test_an_atari_run_saved_under_a_camelcase_game_name_resumes(tmp_path):
    """A run from before Atari games were stored in snake_case holds ``game: "MsPacman"``; the
    same command today asks for ``ms_pacman``: the same game, so it resumes (another game does not)."""
    config = build_config("atari", "MsPacman", "drq")
    assert config.game == "ms_pacman"
    saved = config.to_dict()
    saved["game"] = "MsPacman"
    write_json(tmp_path / "config.json", saved)
    assert check_run_dir(tmp_path, config) == "resume"
    assert check_run_dir(tmp_path, build_config("atari", "ms_pacman", "drq")) == "resume"
    with pytest.raises(ConfigMismatchError, match="game: run has 'ms_pacman', asked 'pong'"):
        check_run_dir(tmp_path, build_config("atari", "pong", "drq"))


def test_metrics_interval_does_not_change_training(tmp_path):
    finals = []
    for interval in (0, 30):
        config = build_config("minatar", "breakout", "drq", overrides={
            **TINY_MINATAR, "train.metrics_interval": interval})
        train(config, tmp_path / str(interval), progress=False)
        finals.append(torch.load(tmp_path / str(interval) / "final_model.pt")["online"])
    assert [r["step"] for r in read_csv(tmp_path / "30" / "plasticity.csv")] == list(range(30, 301, 30))
    assert not (tmp_path / "0" / "plasticity.csv").exists()
    assert all(torch.equal(finals[0][key], finals[1][key]) for key in finals[0])


@pytest.mark.parametrize("anneal", ["agent_steps", "updates"])
def test_prioritized_replay_importance_exponent_anneals_linearly_to_one(tmp_path, monkeypatch, anneal):
    betas = []
    real_sample = ReplayBuffer.sample

    def spy(self, batch_size, beta=0.4, **kwargs):
        betas.append((self.num_added, beta))  # num_added: the agent steps so far
        return real_sample(self, batch_size, beta, **kwargs)

    monkeypatch.setattr(ReplayBuffer, "sample", spy)
    config = build_config("minatar", "breakout", "drq",
                          overrides={**TINY_MINATAR, "agent.importance_anneal": anneal})
    assert config.agent.prioritized and config.agent.importance_exponent_start == 0.4
    train(config, tmp_path, progress=False)
    # Updates every 4th step after step 100 of T = 300 agent steps: 50 updates.
    assert [t for t, _ in betas] == list(range(104, 301, 4))
    if anneal == "agent_steps":  # β = 0.4 + (1 − 0.4)·t/T at agent step t
        expected = [0.4 + 0.6 * t / 300 for t, _ in betas]
    else:  # the authors': β = 0.4 + (1 − 0.4)·k/K at the k-th of K = 50 updates
        expected = [0.4 + 0.6 * k / 50 for k in range(1, 51)]
    assert [b for _, b in betas] == pytest.approx(expected, abs=1e-12)
    assert betas[-1][1] == pytest.approx(1.0)


def test_each_evaluation_draws_fresh_reproducible_env_seeds(tmp_path, monkeypatch):
    seeds = []
    real_make_env = Trainer._make_env

    def spy(self, seed, train):
        if not train:
            seeds.append(seed)
        return real_make_env(self, seed, train)

    monkeypatch.setattr(Trainer, "_make_env", spy)
    config = build_config("minatar", "breakout", "drq", seed=3, overrides={
        **TINY_MINATAR, "train.eval_interval": 100, "train.eval_envs": 2, "train.eval_episodes": 2,
        "train.checkpoint_interval": 150})
    # Evaluations 0 and 1 at steps 100 and 200, killed at 250, resumed from the checkpoint at 150
    # (after evaluation 0): evaluation 1 again at step 200, then evaluation 2 at the end.
    kill_at_step(config, tmp_path, 250)
    train(config, tmp_path, progress=False)
    expected = [int(s) for k in (0, 1, 1, 2) for s in np.random.SeedSequence([3, k]).generate_state(2)]
    assert seeds == expected and len(set(seeds)) == 6
    assert [r["step"] for r in read_csv(tmp_path / "eval.csv")] == [100, 200, 300]


def test_atari_evaluation_restarts_the_frame_stack_at_each_life_loss(tmp_path):
    config = build_config("atari", "breakout", "drq", overrides={  # the default env's settings
        "train.eval_episodes": 1, "train.eval_envs": 1, "fidelity": "intent"})
    trainer = Trainer(config, tmp_path)
    trainer._setup()
    trainer.logger = RunLogger(tmp_path, tensorboard=False)
    rng = np.random.default_rng(1)
    seen, actions = [], []

    def act(obs, evaluate):
        seen.append(obs[0].copy())
        actions.append(int(rng.integers(4)))
        return np.array(actions[-1:])

    trainer.agent.act = act
    result = trainer._evaluate()
    score = result["score"]
    # The same game with a whole-game env, whose stack runs on across life losses.
    game = make_atari_env("breakout", evaluation_seeds(config.seed, 0, 1)[0], train=False)
    obs, info = game.reset()
    np.testing.assert_array_equal(seen[0], obs)
    rewards, life_losses, lives = [], [], info["lives"]
    for i, action in enumerate(actions):
        obs, reward, _, _, info = game.step(action)
        rewards.append(reward)
        if info["game_over"]:
            break
        np.testing.assert_array_equal(seen[i + 1][-1], obs[-1])  # the same frames
        if info["lives"] < lives:
            life_losses.append(i + 1)
            assert obs[:3].any() and not seen[i + 1][:3].any()  # evaluation restarted the stack
        lives = info["lives"]
    assert len(life_losses) == 4 and info["game_over"] and len(rewards) == len(actions)
    assert sum(rewards[life_losses[0]:]) > 0  # the score counts points after a life loss
    assert score == info["episode_return"] == sum(rewards)
    # the game's length counts agent steps over all its lives, as logged in eval.csv
    assert result["lengths"] == [len(actions)] == [info["episode_length"]]
    logged = read_csv(tmp_path / "eval.csv")[-1]
    assert float(logged["game_length_max"]) == float(logged["game_length_mean"]) == len(actions)


class _CountdownGame(gym.Env):
    """A game of ``length`` steps (its seed), reward 1 a step, a 'life' lost every 3 steps."""

    observation_space = gym.spaces.Box(0, 1, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int):
        self.length, self.played = length, 0

    def reset(self, *, seed=None, options=None):
        if self.played in (0, self.length):
            self.played = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.played += 1
        over = self.played == self.length
        info = {"game_over": over}
        if over:
            info.update(episode_return=float(self.played), episode_length=self.played)
        return np.zeros(1, np.float32), 1.0, over or self.played % 3 == 0, False, info


def test_play_games_records_each_games_return_and_length():
    lengths_by_seed = {}

    def make(seed):
        lengths_by_seed[seed] = 4 + seed % 7
        return _CountdownGame(lengths_by_seed[seed])

    games = play_games(lambda obs: np.zeros(len(obs), int), make, episodes=5, num_envs=2, seed=0)
    # env 0 plays 3 games, env 1 plays 2, each always of its own length; lists in finishing order
    first, second = (lengths_by_seed[s] for s in evaluation_seeds(0, 0, 2))
    expected = sorted([first] * 3 + [second] * 2)
    assert sorted(games.lengths) == expected and len(games.lengths) == 5
    assert games.returns == [float(n) for n in games.lengths]


def test_sticky_actions_key_reaches_the_atari_and_minatar_envs(tmp_path):
    def player_row(probability: float) -> int:
        config = build_config("minatar", "freeway", "drq",
                              overrides={"env.repeat_action_probability": probability})
        env = Trainer(config, tmp_path)._make_env(0, train=True)
        env.reset()
        for _ in range(5):
            obs = env.step(1)[0]  # "up", unless the previous action (initially no-op) sticks
        return int(np.argwhere(obs[0])[0][0])

    assert player_row(1.0) == 9 > player_row(0.0)
    config = build_config("atari", "breakout", "drq", overrides={
        "env.repeat_action_probability": 0.25, "train.checkpoint_interval": 0})
    for train_mode in (True, False):
        env = Trainer(config, tmp_path)._make_env(0, train=train_mode)
        assert env.unwrapped.ale.getFloat("repeat_action_probability") == 0.25
    assert Config().env.repeat_action_probability == 0.0  # the Atari-100k protocol


def test_a_stream_that_gains_a_column_widens_its_csv_and_truncation_keeps_it(tmp_path):
    # A run logged before a column existed (e.g. env_steps) resumes with it.
    logger = RunLogger(tmp_path, tensorboard=False)
    for step in (10, 20, 30):
        logger.log("train", step, {"loss": step / 10})
    resumed = RunLogger(tmp_path, tensorboard=False, resume_step=20)
    resumed.log("train", 30, {"env_steps": 60, "loss": 3.5})
    rows = read_csv(tmp_path / "train.csv")
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert [r["loss"] for r in rows] == [1.0, 2.0, 3.5]
    assert np.isnan(rows[0]["env_steps"]) and np.isnan(rows[1]["env_steps"]) and rows[2]["env_steps"] == 60



@pytest.fixture
def sigint_raises():
    """SIGINT as a KeyboardInterrupt, as in a terminal's foreground job (tests started as a
    background job inherit it ignored)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_while_logging_waits_for_the_row_and_the_tensorboard_event(tmp_path, sigint_raises):
    """A SIGINT arriving inside TensorBoard's writer (whose queue can lose a wake-up when a
    KeyboardInterrupt lands in it, and then hung the run's close for up to 120 s) is delivered
    after the whole row is logged, as the usual KeyboardInterrupt."""
    import signal

    logger = RunLogger(tmp_path)
    written = []
    real_add_scalar = logger._writer.add_scalar

    def add_scalar(tag, value, step):
        signal.raise_signal(signal.SIGINT)  # "Ctrl-C" in the middle of the writer's work
        written.append(tag)
        real_add_scalar(tag, value, step)

    logger._writer.add_scalar = add_scalar
    with pytest.raises(KeyboardInterrupt):
        logger.log("train", 10, {"loss": 0.5, "q": 1.5})
    assert written == ["train/loss", "train/q"]  # every scalar written before the interrupt
    assert [r["loss"] for r in read_csv(tmp_path / "train.csv")] == [0.5]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    started = time.perf_counter()
    logger.close()
    assert time.perf_counter() - started < 5

def test_dmc_logs_count_env_steps(tmp_path):
    pytest.importorskip("dm_control")
    config = build_config("dmc", "cartpole-swingup", "drq", overrides={
        "env.obs": "state", "env.action_repeat": 8, "train.steps": 130, "train.learning_starts": 200,
        "train.eval_episodes": 1, "train.eval_envs": 1, "train.log_interval": 65,
        "train.metrics_interval": 0})
    summary = train(config, tmp_path, progress=False)
    assert summary["env_steps"] == 8 * 130
    assert [(r["step"], r["env_steps"]) for r in read_csv(tmp_path / "train.csv")] == [(65, 520), (130, 1040)]
    # One 1000-step episode (the task's time limit) takes 125 agent steps at action repeat 8.
    assert [(r["step"], r["env_steps"]) for r in read_csv(tmp_path / "episodes.csv")] == [(125, 1000)]
    # The authors' schedule evaluates after the first agent step too (train.eval_at_start).
    assert [(r["step"], r["env_steps"]) for r in read_csv(tmp_path / "eval.csv")] == [(1, 8), (130, 1040)]
    by_hand = Config(suite="dmc", game="cheetah-run")  # action repeat 0: the task's, 4
    assert Trainer(by_hand, tmp_path).suite.action_repeat(by_hand) == 4


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
