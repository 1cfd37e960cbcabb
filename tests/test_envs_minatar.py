"""MinAtar envs, checked against MinAtar's own Environment stepped by hand."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("minatar")
from minatar import Environment  # noqa: E402

from plastic.envs import make_env  # noqa: E402
from plastic.envs.minatar import MINATAR_GAMES, make_minatar_env  # noqa: E402


@pytest.mark.parametrize("game", MINATAR_GAMES)
def test_observations_and_rewards_match_raw_minatar(game):
    seed = 3
    env = make_minatar_env(game, seed)
    reference = Environment(game, sticky_action_prob=0.0)
    reference.seed(seed)
    reference.reset()
    minimal = reference.minimal_action_set()
    channels = reference.state_shape()[2]

    assert env.action_space.n == len(minimal)
    assert env.observation_space.shape == (channels, 10, 10)
    obs, _ = env.reset()
    assert obs.dtype == np.uint8 and obs.shape == (channels, 10, 10)
    np.testing.assert_array_equal(obs, reference.state().transpose(2, 0, 1))

    actions = np.random.default_rng(0).integers(0, len(minimal), size=200)
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(int(action))
        ref_reward, ref_done = reference.act(minimal[action])
        assert env.observation_space.contains(obs)
        np.testing.assert_array_equal(obs, reference.state().transpose(2, 0, 1))
        assert reward == ref_reward and terminated == ref_done and not truncated
        assert info["game_over"] == ref_done
        if ref_done:
            break


def test_same_seed_same_trajectory_other_seed_differs():
    def trajectory(seed: int) -> np.ndarray:
        env = make_minatar_env("asterix", seed)
        frames = [env.reset()[0]]
        for _ in range(40):
            frames.append(env.step(0)[0])
        return np.stack(frames)

    np.testing.assert_array_equal(trajectory(11), trajectory(11))
    assert not np.array_equal(trajectory(11), trajectory(12))


def test_whole_game_stats_and_no_life_terminals():
    env = make_minatar_env("space_invaders", 0, train=True)
    env.reset()
    rng = np.random.default_rng(0)
    rewards = []
    for _ in range(5000):
        _, reward, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        rewards.append(reward)
        if terminated or truncated:
            break
        assert not info["game_over"] and "episode_return" not in info
    assert terminated and info["game_over"]
    assert info["episode_return"] == sum(rewards) and info["episode_length"] == len(rewards)
    assert sum(rewards) > 0  # random play shoots some aliens: the sum checks something
    env.reset()
    _, _, _, _, info = env.step(0)
    assert not info["game_over"]


def test_step_cap_truncates():
    env = make_minatar_env("freeway", 0, max_episode_steps=10)
    env.reset()
    for step in range(1, 11):
        _, _, terminated, truncated, info = env.step(0)
        assert not terminated and truncated == (step == 10) == info["game_over"]
    assert info["episode_length"] == 10 and info["episode_return"] == 0.0


def test_sticky_actions_only_when_asked():
    # With probability 1 every action repeats the previous one (initially 0, "no-op"), so the
    # player in freeway never moves; by default "up" moves it up.
    def player_row(**kwargs) -> int:
        env = make_minatar_env("freeway", 0, **kwargs)
        env.reset()
        for _ in range(5):
            obs = env.step(1)[0]  # minimal action 1 = up
        return int(np.argwhere(obs[0])[0][0])

    start_row = int(np.argwhere(make_minatar_env("freeway", 0).reset()[0][0])[0][0])
    assert player_row() < start_row
    assert player_row(repeat_action_probability=1.0) == start_row


def test_unknown_game_lists_valid_games_and_make_env_dispatches():
    with pytest.raises(ValueError) as excinfo:
        make_minatar_env("pong", 0)
    assert all(game in str(excinfo.value) for game in MINATAR_GAMES)
    obs, _ = make_env("minatar", "space_invaders", 0, train=False).reset()
    assert obs.shape == (6, 10, 10)
