"""Environments: Atari-100k protocol (ale-py), MinAtar, and (optionally) DMC from pixels.

All suites share one interface: ``make_env(suite, name, seed, train=...)`` returns a Gymnasium
env whose every step's ``info`` holds ``game_over`` and, at the end of a game,
``episode_return`` and ``episode_length``. dm_control is imported only when a DMC env is made.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from plastic.envs.atari import make_atari_env
from plastic.envs.minatar import MINATAR_GAMES, make_minatar_env
from plastic.envs.scores import (
    ATARI_100K_GAMES,
    HUMAN_SCORES,
    RANDOM_SCORES,
    camel_to_snake,
    human_normalized_score,
)
from plastic.envs.snapshot import get_env_state, set_env_state
from plastic.suites import get_suite


def make_env(suite: str, name: str, seed: int, *, train: bool, **kwargs: Any) -> gym.Env:
    """Make environment ``name`` of ``suite``; ``kwargs`` go to the suite's own maker."""
    return get_suite(suite).make_env(name, seed, train=train, **kwargs)


__all__ = [
    "ATARI_100K_GAMES",
    "HUMAN_SCORES",
    "MINATAR_GAMES",
    "RANDOM_SCORES",
    "camel_to_snake",
    "get_env_state",
    "human_normalized_score",
    "make_atari_env",
    "make_env",
    "make_minatar_env",
    "set_env_state",
]
