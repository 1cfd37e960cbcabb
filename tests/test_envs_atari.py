"""Atari-100k protocol envs, checked against the raw ALE and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("ale_py")
from ale_py.env import AtariEnv  # noqa: E402

from plastic.envs import make_env  # noqa: E402
from plastic.envs.atari import area_resize, bilinear_resize, make_atari_env  # noqa: E402
from plastic.envs.scores import (  # noqa: E402
    ATARI_100K_GAMES,
    HUMAN_SCORES,
    RANDOM_SCORES,
    camel_to_snake,
    human_normalized_score,
)


def raw_ale(game: str, seed: int) -> AtariEnv:
    """An unwrapped ALE env: one emulator frame a step, grayscale screens, no sticky actions."""
    env = AtariEnv(game, obs_type="grayscale", frameskip=1, repeat_action_probability=0.0)
    env.reset(seed=seed)
    return env


# ---------------------------------------------------------------- observations and seeding


def test_observation_is_uint8_stack_zero_padded_at_start():
    env = make_atari_env("breakout", seed=0, train=True)
    obs, info = env.reset()
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space.shape == (4, 84, 84)
    assert env.observation_space.contains(obs)
    assert info["new_game"] is True
    assert not obs[:3].any(), "frames before the episode start must be zeros"
    assert obs[3].any()
    obs, *_ = env.step(0)
    assert not obs[:2].any() and obs[2].any() and obs[3].any()


def test_action_space_is_minimal_set_unless_full_requested():
    for game in ("breakout", "pong"):
        minimal = len(AtariEnv(game).unwrapped.ale.getMinimalActionSet())
        assert make_atari_env(game, seed=0, train=True).action_space.n == minimal
    assert make_atari_env("pong", 0, train=True).action_space.n == 6
    assert make_atari_env("pong", 0, train=True, full_action_space=True).action_space.n == 18


def test_noop_starts_vary_with_seed_and_are_reproducible():
    noops = {
        seed: make_atari_env("pong", seed, train=True).reset()[1]["noops"] for seed in range(6)
    }
    assert all(1 <= n <= 30 for n in noops.values())
    assert len(set(noops.values())) >= 3

    a, b = make_atari_env("pong", 5, train=True), make_atari_env("pong", 5, train=True)
    actions = np.random.default_rng(0).integers(0, a.action_space.n, size=60)
    obs_a, info_a = a.reset()
    obs_b, info_b = b.reset()
    assert info_a["noops"] == info_b["noops"]
    np.testing.assert_array_equal(obs_a, obs_b)
    for action in actions:
        obs_a, r_a, *_ = a.step(int(action))
        obs_b, r_b, *_ = b.step(int(action))
        np.testing.assert_array_equal(obs_a, obs_b)
        assert r_a == r_b
    # A second game draws new no-ops from the same seeded stream in both envs.
    assert a.reset()[1]["noops"] == b.reset()[1]["noops"]

    assert make_atari_env("pong", 5, train=True, noop_max=0).reset()[1]["noops"] == 0


# ---------------------------------------------------------------- frame skip, max-pool, resize


def brute_force_area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Each output pixel = mean of the input over its rectangle, by explicit overlap sums."""
    h_in, w_in = image.shape
    sy, sx = h_in / height, w_in / width
    out = np.zeros((height, width))
    for i in range(height):
        for j in range(width):
            total = 0.0
            for y in range(h_in):
                oy = min((i + 1) * sy, y + 1) - max(i * sy, y)
                if oy <= 0:
                    continue
                for x in range(w_in):
                    ox = min((j + 1) * sx, x + 1) - max(j * sx, x)
                    if ox > 0:
                        total += oy * ox * float(image[y, x])
            out[i, j] = total / (sy * sx)
    return out


def test_area_resize_matches_brute_force_and_block_means():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(23, 17), dtype=np.uint8)
    expected = brute_force_area_resize(image, 9, 7)
    got = area_resize(image, (9, 7))
    assert got.dtype == np.uint8 and got.shape == (9, 7)
    assert np.abs(got - expected).max() <= 0.5 + 1e-3

    # Integer factor: each output pixel is the mean of a 2x2 block.
    block = np.array([[0, 2, 10, 10], [4, 6, 10, 14], [255, 255, 1, 2], [255, 253, 3, 4]], np.uint8)
    np.testing.assert_array_equal(area_resize(block, (2, 2)), [[3, 11], [254, 2]])

    flat = np.full((210, 160), 77, np.uint8)
    np.testing.assert_array_equal(area_resize(flat, (84, 84)), np.full((84, 84), 77))


def test_frame_skip_and_max_pool_match_raw_ale():
    game, seed = "breakout", 3
    env = make_atari_env(game, seed, train=False)
    obs, info = env.reset()
    raw = raw_ale(game, seed)
    screen = None
    for _ in range(info["noops"]):
        screen, *_ = raw.step(0)
    np.testing.assert_array_equal(obs[-1], area_resize(screen, (84, 84)))

    rng = np.random.default_rng(1)
    previous = obs[-1]
    pooling_mattered = 0
    for _ in range(60):
        action = int(rng.integers(env.action_space.n))
        obs, reward, terminated, truncated, _ = env.step(action)
        screens, raw_reward = [], 0.0
        for _ in range(4):
            frame, r, *_ = raw.step(action)
            screens.append(frame)
            raw_reward += r
        expected = area_resize(np.maximum(screens[2], screens[3]), (84, 84))
        np.testing.assert_array_equal(obs[-1], expected)
        np.testing.assert_array_equal(obs[-2], previous)
        assert reward == raw_reward
        pooling_mattered += not np.array_equal(expected, area_resize(screens[3], (84, 84)))
        previous = expected
        assert not (terminated or truncated)
    # The check has teeth: on some steps the pooled frame differs from the last frame alone.
    assert pooling_mattered > 0


# ---------------------------------------------------------------- lives, returns, cap


def play(env, actions, *, reset_on_terminal: bool):
    """Play one whole game; returns per-step records and the info of the last step."""
    obs, info = env.reset()
    records = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(int(action))
        records.append((obs, reward, terminated, truncated, info))
        if info["game_over"]:
            return records
        if terminated and reset_on_terminal:
            reset_obs, reset_info = env.reset()
            records.append(("reset", reset_obs, reset_info))
    raise AssertionError("game did not end")


def is_reset(record) -> bool:
    return isinstance(record[0], str)


def test_life_loss_is_terminal_in_train_mode_only_and_game_continues():
    actions = np.random.default_rng(0).integers(0, 4, size=5000)
    train = play(make_atari_env("breakout", 7, train=True), actions, reset_on_terminal=True)
    evaluation = play(make_atari_env("breakout", 7, train=False), actions, reset_on_terminal=False)

    steps = [r for r in train if not is_reset(r)]
    resets = [r for r in train if is_reset(r)]
    life_losses = [r for r in steps if r[2] and not r[4]["game_over"]]
    assert len(life_losses) == 4 and len(resets) == 4  # breakout: 5 lives
    for i, record in enumerate(train):
        if is_reset(record):
            _, reset_obs, reset_info = record
            lost_obs, lost_info = train[i - 1][0], train[i - 1][4]
            assert reset_info["new_game"] is False and reset_info["noops"] == 0
            assert reset_info["lives"] == lost_info["lives"]
            assert not reset_obs[:3].any()
            np.testing.assert_array_equal(reset_obs[3], lost_obs[3])  # the current frame
            next_info = train[i + 1][4]
            assert next_info["lives"] == lost_info["lives"]
            assert next_info["episode_frame_number"] == lost_info["episode_frame_number"] + 4

    # Evaluation: no terminal before game over, and the very same game as in training.
    assert all(not r[2] for r in evaluation[:-1])
    assert len(evaluation) == len(steps)
    for (obs_t, r_t, _, _, _), (obs_e, r_e, _, _, _) in zip(steps, evaluation, strict=True):
        np.testing.assert_array_equal(obs_t[-1], obs_e[-1])
        assert r_t == r_e

    for records in (steps, evaluation):
        last_info = records[-1][4]
        assert last_info["game_over"] and records[-1][2] and last_info["lives"] == 0
        assert last_info["episode_return"] == sum(r[1] for r in records)
        assert last_info["episode_length"] == len(records)
        assert "episode_return" not in records[-2][4]
        assert all(not r[4]["game_over"] for r in records[:-1])


def test_reset_after_game_over_starts_a_new_game_even_if_lives_were_lost_unreset():
    env = make_atari_env("breakout", 7, train=True)
    env.reset()
    rng = np.random.default_rng(0)
    terminals = 0
    for _ in range(5000):  # never reset on life loss: the stale life-loss flag must not leak
        _, _, terminated, _, info = env.step(int(rng.integers(4)))
        terminals += terminated
        if info["game_over"]:
            break
    assert info["game_over"] and terminals == 5
    _, info = env.reset()
    assert info["new_game"] is True and info["lives"] == 5


def test_episode_return_is_sum_of_raw_unclipped_rewards():
    env = make_atari_env("ms_pacman", 1, train=False, max_episode_frames=2400)
    actions = np.random.default_rng(2).integers(0, env.action_space.n, size=1000)
    records = play(env, actions, reset_on_terminal=False)
    rewards = [r[1] for r in records]
    assert max(rewards) >= 10, "rewards must be raw game points, not clipped"
    assert records[-1][4]["episode_return"] == pytest.approx(sum(rewards))
    assert records[-1][4]["episode_length"] == len(records)


@pytest.mark.parametrize("noop_max", [0, 30])
def test_frame_cap_truncates_the_game(noop_max):
    frames = 200
    env = make_atari_env("pong", 4, train=True, max_episode_frames=frames, noop_max=noop_max)
    _, info = env.reset()
    expected_steps = math.ceil((frames - info["noops"]) / 4)  # the cap counts no-op frames too
    for step in range(1, expected_steps + 1):
        _, _, terminated, truncated, info = env.step(0)
        assert not terminated
        assert truncated == (step == expected_steps) == info["game_over"]
    assert info["episode_length"] == expected_steps
    assert info["episode_frame_number"] == frames
    _, info = env.reset()
    assert info["new_game"] is True and info["episode_frame_number"] == info["noops"]


# ---------------------------------------------------------------- the authors' settings


def test_bilinear_resize_by_hand():
    flat = np.full((210, 160), 77, np.uint8)
    np.testing.assert_array_equal(bilinear_resize(flat, (84, 84)), np.full((84, 84), 77))
    # 4 -> 2 pixels: each output centre lies halfway between two inputs (weights 1024, 1024).
    row = np.array([[0, 10, 100, 201]], np.uint8)
    np.testing.assert_array_equal(bilinear_resize(row, (1, 2)), [[5, 151]])  # 150.5 rounds up
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(210, 160), dtype=np.uint8)
    exact = bilinear_float(image, 84, 84)
    assert np.abs(bilinear_resize(image, (84, 84)) - exact).max() <= 1.0  # fixed point: off by < 1
    with pytest.raises(ValueError, match="2-D uint8"):
        bilinear_resize(image.astype(np.float32), (84, 84))


def bilinear_float(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Half-pixel-centre bilinear interpolation in float64, edges clamped."""

    def taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        centres = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        left = np.minimum(np.floor(centres).astype(int), n_in - 2)
        return left, left + 1, centres - left

    y0, y1, fy = taps(image.shape[0], height)
    x0, x1, fx = taps(image.shape[1], width)
    rows = image[y0] * (1 - fy)[:, None] + image[y1] * fy[:, None]
    return rows[:, x0] * (1 - fx) + rows[:, x1] * fx


def test_agent_step_horizon_ends_the_game_on_its_step_after_the_horizon():
    horizon = 20
    env = make_atari_env("pong", 4, train=True, time_limit="agent_steps", max_episode_steps=horizon)
    assert env.unwrapped.ale.getInt("max_num_frames_per_episode") == 0  # no ALE frame cap
    _, info = env.reset()
    for step in range(1, horizon + 2):
        _, _, terminated, truncated, info = env.step(0)
        # As the authors' counter: the step taken with `horizon` steps behind it ends the game.
        assert terminated == (step == horizon + 1) == info["game_over"] and not truncated
    assert info["episode_length"] == horizon + 1
    _, info = env.reset()
    assert info["new_game"] is True
    with pytest.raises(ValueError, match="no frame cap"):
        make_atari_env("pong", 4, train=True, time_limit="agent_steps", max_episode_frames=100)
    with pytest.raises(ValueError, match="time_limit"):
        make_atari_env("pong", 4, train=True, time_limit="steps")


def test_agent_step_horizon_counts_steps_across_life_losses():
    env = make_atari_env("breakout", 7, train=True, time_limit="agent_steps", max_episode_steps=150)
    env.reset()
    rng = np.random.default_rng(0)
    steps = life_losses = 0
    while True:
        _, _, terminated, _, info = env.step(int(rng.integers(4)))
        steps += 1
        if info["game_over"]:
            break
        if terminated:
            life_losses += 1
            assert env.reset()[1]["new_game"] is False
    assert life_losses >= 1 and steps == info["episode_length"] == 151 and info["lives"] > 0


@pytest.mark.parametrize("train", [True, False])
def test_life_loss_noop_plays_one_noop_frame_at_the_start_and_after_each_lost_life(train):
    game, seed = "breakout", 7
    env = make_atari_env(game, seed, train=train, life_loss_noop=True, resize="bilinear")
    obs, info = env.reset()
    raw = raw_ale(game, seed)
    for _ in range(1 + info["noops"]):  # the NOOP at the start of the game, then the no-ops
        screen, *_ = raw.step(0)
    assert info["episode_frame_number"] == 1 + info["noops"]
    np.testing.assert_array_equal(obs[-1], bilinear_resize(screen, (84, 84)))

    rng = np.random.default_rng(0)
    lives, life_losses = info["lives"], 0
    while True:
        action = int(rng.integers(4))
        obs, reward, terminated, _, info = env.step(action)
        screens, raw_reward = [], 0.0
        for _ in range(4):
            screen, r, *_ = raw.step(action)
            screens.append(screen)
            raw_reward += r
        if info["game_over"]:
            break
        pooled = np.maximum(screens[2], screens[3])
        if info["lives"] < lives:
            life_losses += 1
            after_noop, noop_reward, *_ = raw.step(0)
            assert noop_reward == 0
            # Train: the frame after the NOOP alone (their internal reset zeroes the last screen);
            # eval: pooled with the skip's third screen (their episodic_lives=False).
            pooled = after_noop if train else np.maximum(screens[2], after_noop)
            assert terminated == train
            if train:
                reset_obs, _ = env.reset()
                np.testing.assert_array_equal(reset_obs[-1], obs[-1])
        np.testing.assert_array_equal(obs[-1], bilinear_resize(pooled, (84, 84)))
        assert reward == raw_reward
        lives = info["lives"]
    assert life_losses == 4
    assert info["episode_frame_number"] == raw.unwrapped.ale.getEpisodeFrameNumber()


def test_suite_passes_the_fidelity_settings_to_the_env():
    from plastic.configs.presets import build_config
    from plastic.suites import get_suite

    runtime = get_suite("atari")
    authors = runtime.env_kwargs(build_config("atari", "pong", "drq"))
    intent = runtime.env_kwargs(build_config("atari", "pong", "drq", overrides={"fidelity": "intent"}))
    keys = ("resize", "time_limit", "life_loss_noop", "max_episode_steps")
    assert [authors[k] for k in keys] == ["bilinear", "agent_steps", True, 27_000]
    assert [intent[k] for k in keys] == ["area", "frames", False, 27_000]
    env = make_atari_env("pong", 0, train=True, **intent)
    assert env.unwrapped.ale.getInt("max_num_frames_per_episode") == 108_000


# ---------------------------------------------------------------- names and errors


def test_any_ale_game_in_snake_or_camel_case_and_unknown_names_list_the_games():
    assert make_atari_env("space_invaders", 0, train=True).action_space.n == 6
    assert make_atari_env("SpaceInvaders", 0, train=True).action_space.n == 6
    with pytest.raises(ValueError) as excinfo:
        make_atari_env("not_a_game", 0, train=True)
    message = str(excinfo.value)
    assert "not_a_game" in message and all(game in message for game in ATARI_100K_GAMES)
    with pytest.raises(ValueError, match="frame_stack"):
        make_atari_env("pong", 0, train=True, frame_stack=0)


def test_make_env_dispatches_and_rejects_unknown_suites():
    obs, _ = make_env("atari", "pong", 0, train=True, frame_stack=2).reset()
    assert obs.shape == (2, 84, 84)
    with pytest.raises(ValueError, match="atari.*minatar"):
        make_env("mujoco", "pong", 0, train=True)


# ---------------------------------------------------------------- scores


def test_human_normalized_score_by_hand():
    # breakout: (100 - 1.7) / (30.5 - 1.7) = 98.3 / 28.8
    assert human_normalized_score("breakout", 100) == pytest.approx(98.3 / 28.8)
    # pong: (0 - (-20.7)) / (14.6 - (-20.7)) = 20.7 / 35.3
    assert human_normalized_score("pong", 0.0) == pytest.approx(20.7 / 35.3)
    assert human_normalized_score("BankHeist", 753.1) == pytest.approx(1.0)
    assert human_normalized_score("up_n_down", 533.4) == pytest.approx(0.0)


# The random and human reference scores of the 26 games, as the Atari-100k literature publishes
# them, typed in again here so that a slip in the package's table shows.
PUBLISHED_RANDOM_HUMAN = """
alien 227.8 7127.7 | amidar 5.8 1719.5 | assault 222.4 742.0 | asterix 210.0 8503.3
bank_heist 14.2 753.1 | battle_zone 2360.0 37187.5 | boxing 0.1 12.1 | breakout 1.7 30.5
chopper_command 811.0 7387.8 | crazy_climber 10780.5 35829.4 | demon_attack 152.1 1971.0
freeway 0.0 29.6 | frostbite 65.2 4334.7 | gopher 257.6 2412.5 | hero 1027.0 30826.4
jamesbond 29.0 302.8 | kangaroo 52.0 3035.0 | krull 1598.0 2665.5 | kung_fu_master 258.5 22736.3
ms_pacman 307.3 6951.6 | pong -20.7 14.6 | private_eye 24.9 69571.3 | qbert 163.9 13455.0
road_runner 11.5 7845.0 | seaquest 68.4 42054.7 | up_n_down 533.4 11693.2
"""


def test_every_reference_score_is_the_published_one():
    published = {}
    for entry in PUBLISHED_RANDOM_HUMAN.replace("\n", " | ").split("|"):
        if entry.strip():
            game, random_score, human_score = entry.split()
            published[game] = (float(random_score), float(human_score))
    assert sorted(published) == sorted(ATARI_100K_GAMES)
    assert {g: (RANDOM_SCORES[g], HUMAN_SCORES[g]) for g in ATARI_100K_GAMES} == published


def test_game_tables_and_camel_case_names():
    camel = [
        "Alien",
        "Amidar",
        "Assault",
        "Asterix",
        "BankHeist",
        "BattleZone",
        "Boxing",
        "Breakout",
        "ChopperCommand",
        "CrazyClimber",
        "DemonAttack",
        "Freeway",
        "Frostbite",
        "Gopher",
        "Hero",
        "Jamesbond",
        "Kangaroo",
        "Krull",
        "KungFuMaster",
        "MsPacman",
        "Pong",
        "PrivateEye",
        "Qbert",
        "RoadRunner",
        "Seaquest",
        "UpNDown",
    ]
    assert tuple(camel_to_snake(name) for name in camel) == ATARI_100K_GAMES
    assert camel_to_snake("bank_heist") == "bank_heist"
    assert set(RANDOM_SCORES) == set(HUMAN_SCORES) == set(ATARI_100K_GAMES)
    assert all(HUMAN_SCORES[g] > RANDOM_SCORES[g] for g in ATARI_100K_GAMES)
    with pytest.raises(ValueError, match="alien.*up_n_down"):
        human_normalized_score("space_invaders", 100)
