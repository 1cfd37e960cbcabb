"""Our Atari env under the authors' settings against frames recorded from the authors' env class.

The fixtures come from tests/golden/generate_atari_env.py, which runs their ``AtariEnv`` on
ale-py. Here our env replays the same games (same start no-op counts, same actions, their
training loop's resets) with ``resize="bilinear"``, ``time_limit="agent_steps"`` and
``life_loss_noop=True``, and every observation, reward, terminal flag and life count must be equal,
uint8 frames exactly. Each setting flipped back to our default breaks the equality.

How the two envs' outputs line up: their env zeroes its frame stack inside ``step`` when a life
is lost, ours returns ``terminated=True`` and the training loop's ``reset()`` continues the game
with a zero-padded stack, so their step's observation is compared with our reset's. At a game's
end only the newest frame is compared: that observation is terminal, and where a life is lost on
the game's last step their stack is zeroed while ours (not reset within the game) is not.

One difference is no setting: when a game ends before the last frame of a skip, their env plays
the skip's remaining frames on the finished game (the ALE no longer moves), so its last frame is
the final screen alone, where ours max-pools the final screen with the one before it. That
terminal frame is checked to be their final screen alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ale_py")

from plastic.envs.atari import FRAME_SKIP, RESIZERS, area_resize, bilinear_resize, make_atari_env  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "atari_env"
SCENARIOS = ("breakout_lives", "breakout_horizon", "pong_horizon", "breakout_whole_game")
AUTHORS = {"resize": "bilinear", "time_limit": "agent_steps", "life_loss_noop": True}
SCALARS = ("reward", "game_score", "done", "traj_done", "lives")


def load(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{name}.npz") as archive:
        return dict(archive)


class _ForcedNoops:
    """Stands in for our env's no-op stream: hands out the counts forced on the authors' env."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = counts

    def integers(self, low: int, high: int) -> int:
        count = self.counts.pop(0)
        assert low <= count < high
        return count


def play_ours(fixture: dict[str, np.ndarray], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Our env through the fixture's resets and actions, as events in the fixture's terms."""
    settings = dict(settings)
    if settings["time_limit"] == "agent_steps":
        settings["max_episode_steps"] = int(fixture["horizon"])
    else:  # our default cap of 4 x max_episode_steps frames
        settings["max_episode_frames"] = 4 * int(fixture["horizon"])
    env = make_atari_env(str(fixture["game"]), 0, train=bool(fixture["episodic_lives"]),
                         noop_max=int(fixture["max_start_noops"]), **settings)
    protocol = env.env
    protocol._noop_rng = _ForcedNoops([int(n) for n in fixture["noops"]])
    resize = RESIZERS[settings["resize"]]
    events = []
    for kind, action in zip(fixture["kind"], fixture["action"], strict=True):
        if kind == 0:
            obs, info = env.reset()
            frame_number = info["episode_frame_number"]
            events.append(dict(obs=obs, newest=obs[-1], reward=0.0, game_score=0.0, done=False,
                               traj_done=False, lives=info["lives"], cut_short=False))
            continue
        obs, reward, terminated, _, info = env.step(int(action))
        frames, frame_number = info["episode_frame_number"] - frame_number, info["episode_frame_number"]
        next_obs = obs
        if terminated and not info["game_over"]:  # a life lost: the loop's reset goes on with the game
            next_obs, reset_info = env.reset()
            assert reset_info["new_game"] is False
        events.append(dict(obs=next_obs, newest=obs[-1], reward=float(np.sign(reward)),
                           game_score=reward, done=terminated, traj_done=info["game_over"],
                           lives=info["lives"], cut_short=info["game_over"] and frames < FRAME_SKIP,
                           final_screen_alone=resize(protocol._screens[-1], (84, 84))))
    return events


def assert_same_as_authors(fixture: dict[str, np.ndarray], ours: list[dict[str, Any]]) -> None:
    """Event by event; the message names the first event and field that differ."""
    theirs = fixture["frames"][fixture["stack_rows"]]
    for i, mine in enumerate(ours):
        kind = "reset" if fixture["kind"][i] == 0 else f"step (action {fixture['action'][i]})"
        where = f"event {i}, a {kind}:"
        for field in SCALARS:
            expected = fixture[field][i].item()
            assert mine[field] == expected, f"{where} {field} is {mine[field]!r}, theirs {expected!r}"
        if mine["cut_short"]:  # the difference in the module docstring
            np.testing.assert_array_equal(mine["final_screen_alone"], theirs[i][-1], err_msg=where)
        else:
            np.testing.assert_array_equal(mine["newest"], theirs[i][-1], err_msg=f"{where} newest frame")
        if not fixture["traj_done"][i]:
            np.testing.assert_array_equal(mine["obs"], theirs[i], err_msg=f"{where} frame stack")


def test_fixtures_hold_what_the_comparisons_need():
    lives = load("breakout_lives")
    life_losses = lives["done"] & ~lives["traj_done"]
    assert life_losses.sum() == 4 and (lives["lives"][life_losses] > 0).all()
    assert lives["traj_done"].sum() == 1 and lives["kind"][-1] == 1  # a new game after game over
    for name in ("breakout_horizon", "pong_horizon"):
        fixture = load(name)
        resets = np.flatnonzero(fixture["kind"] == 0)
        ends = np.flatnonzero(fixture["traj_done"])
        # Their horizon of 50 ends the game on its 51st agent step, life losses counted in.
        assert len(ends) >= 1 and np.array_equal(ends - resets[: len(ends)], [51] * len(ends))
    horizon = load("breakout_horizon")
    assert (horizon["done"] & ~horizon["traj_done"]).any()


@pytest.mark.parametrize("name", SCENARIOS)
def test_authors_settings_reproduce_their_env(name):
    fixture = load(name)
    assert_same_as_authors(fixture, play_ours(fixture, AUTHORS))


def test_a_game_ending_mid_skip_is_the_one_frame_that_differs():
    fixture = load("breakout_lives")
    ours = play_ours(fixture, AUTHORS)
    cut_short = [i for i, event in enumerate(ours) if event["cut_short"]]
    assert cut_short == [184]  # Breakout's last life ends on the first frame of that step
    theirs = fixture["frames"][fixture["stack_rows"][184, -1]]
    assert not np.array_equal(ours[184]["newest"], theirs)


# Each of our defaults, with the other two settings the authors', and the scenario that shows it.
FLIPS = [
    ("resize", "area", "pong_horizon", "event 0, a reset: newest frame"),
    ("time_limit", "frames", "pong_horizon", "event 47, a step (action 5): traj_done is True, theirs False"),
    ("life_loss_noop", False, "breakout_lives", "event 4, a step (action 1): newest frame"),
]


@pytest.mark.parametrize(("key", "value", "name", "first_difference"), FLIPS, ids=[f[0] for f in FLIPS])
def test_each_default_differs_from_the_authors_env(key, value, name, first_difference):
    fixture = load(name)
    with pytest.raises(AssertionError) as excinfo:
        assert_same_as_authors(fixture, play_ours(fixture, {**AUTHORS, key: value}))
    assert first_difference in str(excinfo.value)


def test_bilinear_resize_is_bit_exact_with_their_cv2_resize():
    fixture = load("resize")
    for raw, resized, source in zip(fixture["raw"], fixture["resized"], fixture["source"], strict=True):
        np.testing.assert_array_equal(bilinear_resize(raw, (84, 84)), resized, err_msg=str(source))
        assert not np.array_equal(area_resize(raw, (84, 84)), resized), source
