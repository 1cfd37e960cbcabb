"""MinAtar games (Young & Tian, 2019) as Gymnasium envs with the same interface as the Atari envs.

Observations are uint8 (C, 10, 10), channel-first (MinAtar's state is (10, 10, C) bool). The
minimal action set is used. Every step's ``info`` holds ``game_over`` and, when the game ends,
``episode_return`` and ``episode_length``, as the Atari envs do. MinAtar has no lives, so
``train`` changes nothing; it is accepted so one training loop can build either suite.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from plastic.envs.snapshot import check_same_config
from plastic.errors import MissingDependencyError

MINATAR_GAMES: tuple[str, ...] = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")

_INSTALL_HINT = "pip install 'minatar>=1.0.15,<2'"


class MinAtarProtocol(gym.Wrapper):
    """Channel-first uint8 observations, an episode cap, whole-game stats and self-seeding."""

    def __init__(self, env: gym.Env, *, seed: int | None, max_episode_steps: int) -> None:
        super().__init__(env)
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        height, width, channels = env.observation_space.shape
        self.observation_space = spaces.Box(0, 1, (channels, height, width), np.uint8)
        self.max_episode_steps = max_episode_steps
        self._pending_seed = seed  # seeds the game at the next reset, then cleared
        self._episode_return = 0.0
        self._episode_length = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        state, info = self.env.reset(seed=seed, options=options)
        self._episode_return = 0.0
        self._episode_length = 0
        return self._channel_first(state), {**info, "new_game": True}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        state, reward, terminated, truncated, info = self.env.step(action)
        reward = float(reward)
        self._episode_return += reward
        self._episode_length += 1
        truncated = bool(truncated) or (
            not terminated and self._episode_length >= self.max_episode_steps
        )
        game_over = bool(terminated or truncated)
        info = {**info, "game_over": game_over}
        if game_over:
            info["episode_return"] = self._episode_return
            info["episode_length"] = self._episode_length
        return self._channel_first(state), reward, bool(terminated), truncated, info

    @staticmethod
    def _channel_first(state: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(state, -1, 0), dtype=np.uint8)

    def get_state(self) -> dict[str, Any]:
        """Everything needed to go on exactly from here, as plain values and numpy arrays: the
        game's objects, its random streams, the sticky last action and the running game stats.
        Use ``plastic.envs.snapshot.get_env_state`` for a whole env."""
        environment = self.env.unwrapped.game  # minatar.Environment
        game_vars = dict(vars(environment.env))
        game_random = game_vars.pop("random")
        return {
            "config": self._snapshot_config(),
            "random": environment.random.get_state(),
            # After Environment.seed() the game and the wrapper share one RandomState.
            "game_random": (
                None if game_random is environment.random else game_random.get_state()
            ),
            "game_vars": copy.deepcopy(game_vars),
            "last_action": environment.last_action,
            "pending_seed": self._pending_seed,
            "episode_return": self._episode_return,
            "episode_length": self._episode_length,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from ``get_state`` of an env made with the same arguments)."""
        check_same_config("MinAtar", state["config"], self._snapshot_config())
        environment = self.env.unwrapped.game
        environment.random = _random_state(state["random"])
        game_vars = copy.deepcopy(state["game_vars"])
        game_vars["random"] = (
            environment.random
            if state["game_random"] is None
            else _random_state(state["game_random"])
        )
        vars(environment.env).clear()
        vars(environment.env).update(game_vars)
        environment.last_action = state["last_action"]
        self._pending_seed = state["pending_seed"]
        self._episode_return = state["episode_return"]
        self._episode_length = state["episode_length"]

    def _snapshot_config(self) -> dict[str, Any]:
        """Settings a snapshot must agree on; the seed is not one (it lives in the RNG states)."""
        base = self.env.unwrapped
        return {
            "game": base.game.env_name,
            "sticky_action_prob": base.game.sticky_action_prob,
            # Only the games that ramp up their difficulty keep this flag.
            "difficulty_ramping": getattr(base.game.env, "ramping", None),
            "action_set": list(base.action_set),
            "max_episode_steps": self.max_episode_steps,
        }


def _random_state(state: tuple[Any, ...]) -> np.random.RandomState:
    random = np.random.RandomState()
    random.set_state(state)
    return random


def make_minatar_env(
    game: str,
    seed: int,
    *,
    train: bool = True,
    max_episode_steps: int = 27_000,
    repeat_action_probability: float = 0.0,
    difficulty_ramping: bool = True,
) -> gym.Env:
    """A MinAtar game with observations uint8 (C, 10, 10) and the minimal action set.

    Sticky actions are off by default (MinAtar's own default is 0.1) so that MinAtar runs follow
    the same deterministic-dynamics protocol as our Atari-100k envs; pass
    ``repeat_action_probability=0.1`` (config key ``env.repeat_action_probability``) to get
    MinAtar's published setting.
    """
    del train  # no lives in MinAtar: learning and evaluation episodes are the same
    if game not in MINATAR_GAMES:
        raise ValueError(f"Unknown MinAtar game {game!r}; valid games: {', '.join(MINATAR_GAMES)}")
    if not 0.0 <= repeat_action_probability <= 1.0:
        raise ValueError(
            f"repeat_action_probability must be in [0, 1], got {repeat_action_probability}"
        )
    try:
        from minatar.gym import BaseEnv
    except ImportError as error:
        raise MissingDependencyError(
            f"MinAtar environments need the minatar package: {_INSTALL_HINT}"
        ) from error
    # minatar.gym.BaseEnv is the class behind MinAtar's own "MinAtar/<Game>-v1" Gymnasium ids;
    # building it directly avoids the global registry and gym.make's checker wrappers.
    base = BaseEnv(
        game,
        use_minimal_action_set=True,
        sticky_action_prob=repeat_action_probability,
        difficulty_ramping=difficulty_ramping,
    )
    return MinAtarProtocol(base, seed=seed, max_episode_steps=max_episode_steps)
