"""The replay buffer rebuilds exactly the observations real environments gave the actor.

DeepMind Control fills its stack with the episode's first frame at reset (DrQ), gymnasium's
zero-padded stack (what the Atari environment uses) starts from zeros: each needs the buffer's
matching ``stack_padding``, and the other padding differs at an episode's first steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import FrameStackObservation

pytest.importorskip("dm_control", reason="dm_control is not installed (pip install -e '.[dmc]')")

from plastic.envs.dmc import make_dmc_env  # noqa: E402
from plastic.replay import ReplayBuffer  # noqa: E402

STACK, SIZE = 3, 16
REPEAT = 40  # 1000 env steps / 40 = 25 agent steps an episode
STEPS = 60  # two whole episodes and the start of a third


@dataclass
class Record:
    episode_step: int
    obs: np.ndarray
    action: np.ndarray
    reward: float
    terminated: bool
    episode_end: bool
    next_obs: np.ndarray


def play(env: gym.Env) -> list[Record]:
    """Random actions for STEPS steps, resetting at episode ends as the training loop does."""
    records, episode_step = [], 0
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(STEPS):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        end = terminated or truncated
        records.append(Record(episode_step, flat(obs), action, reward, terminated, end,
                              flat(next_obs)))
        obs, episode_step = (env.reset()[0], 0) if end else (next_obs, episode_step + 1)
    env.close()
    assert sum(r.episode_end for r in records) == 2
    return records


def flat(obs: np.ndarray) -> np.ndarray:
    """gymnasium stacks (3, H, W) frames on a new axis; the DMC env and the buffer concatenate."""
    return obs.reshape(-1, *obs.shape[-2:]) if obs.ndim == 4 else obs


def mismatched_episode_steps(records: list[Record], padding: str, n_step: int) -> dict[str, set]:
    """Fill a buffer as the loop does, sample every transition, and return the episode steps at
    which its obs / next_obs differ from what the environment returned."""
    pixels = records[0].obs.ndim == 3  # (3 * stack, H, W); state: (D,), one frame
    newest = slice(-3, None) if pixels else slice(None)  # the frame the loop stores
    stack = records[0].obs.shape[0] // 3 if pixels else 1
    first = records[0].obs[newest]
    buffer = ReplayBuffer(1000, first.shape, frame_stack=stack, frame_dtype=first.dtype,
                          action_shape=records[0].action.shape, action_dtype=np.float32,
                          n_step=n_step, gamma=0.9, seed=0, stack_padding=padding)
    for r in records:
        buffer.add(r.obs[newest], r.action, r.reward, r.terminated, r.episode_end)
    # Sampleable: every step whose n-step window stays inside its episode (no terminals here)
    # and whose next observation, the stack at t + n, was stored.
    expected = {t for t in range(STEPS - n_step)
                if not any(r.episode_end for r in records[t:t + n_step])}
    assert buffer.num_valid == len(expected)
    wrong: dict[str, set] = {"obs": set(), "next_obs": set()}
    seen = set()
    for _ in range(40):
        batch = buffer.sample(32)
        for row, t in enumerate(batch.index.tolist()):  # slot t holds step t (no wrap)
            seen.add(t)
            if not np.array_equal(batch.obs[row], records[t].obs):
                wrong["obs"].add(records[t].episode_step)
            if not np.array_equal(batch.next_obs[row], records[t + n_step - 1].next_obs):
                wrong["next_obs"].add(records[t].episode_step)
    assert seen == expected
    starts = [records[t].episode_step for t in seen]
    assert all(starts.count(k) == 3 for k in (0, 1, 2))  # each episode's first steps, 3 episodes
    return wrong


@pytest.fixture(scope="module")
def dmc_pixels() -> list[Record]:
    env = make_dmc_env("cartpole-swingup", 0, image_size=SIZE, frame_stack=STACK,
                       action_repeat=REPEAT)
    return play(env)


@pytest.mark.parametrize("n_step", [1, 3])
def test_dmc_pixel_stacks_rebuild_exactly_with_first_frame_padding(dmc_pixels, n_step):
    records = dmc_pixels
    assert np.array_equal(records[0].obs[:3], records[0].obs[-3:])  # the env's stack at reset
    assert mismatched_episode_steps(records, "first", n_step) == {"obs": set(), "next_obs": set()}
    # Zero padding (the old behaviour) differs at the first STACK-1 steps of every episode.
    assert mismatched_episode_steps(records, "zero", n_step) == {
        "obs": {0, 1}, "next_obs": {k for k in (0, 1) if k + n_step < STACK - 1}}


def test_dmc_state_observations_rebuild_exactly():
    env = make_dmc_env("cartpole-swingup", 0, obs="state", action_repeat=REPEAT)
    records = play(env)
    assert records[0].obs.ndim == 1
    for padding in ("first", "zero"):  # a single-frame observation is never padded
        assert mismatched_episode_steps(records, padding, 1) == {"obs": set(), "next_obs": set()}


def test_zero_padded_stacks_as_atari_pads_them_rebuild_exactly():
    """gymnasium's FrameStackObservation(padding_type="zero"), the Atari env's stack."""
    env = make_dmc_env("cartpole-swingup", 0, image_size=SIZE, frame_stack=1,
                       action_repeat=REPEAT)
    records = play(FrameStackObservation(env, STACK, padding_type="zero"))
    assert records[0].obs.shape == (3 * STACK, SIZE, SIZE) and not records[0].obs[:3].any()
    assert mismatched_episode_steps(records, "zero", 1) == {"obs": set(), "next_obs": set()}
    assert mismatched_episode_steps(records, "first", 1) == {"obs": {0, 1}, "next_obs": {0}}
