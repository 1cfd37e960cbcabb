"""Evaluation: whole games with the agent's evaluation policy, raw returns.

An env may end episodes within a game (Atari's life losses): it is reset, which continues the
game, and the game's return is recorded when ``info["game_over"]``.

Rainbow acts with noise off and a small ε (Atari-100k protocol); DrQ (SAC) with the mean action
tanh(μ), deterministically.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np


def evaluation_seeds(run_seed: int, index: int, num_envs: int) -> list[int]:
    """Seeds of the environments of a run's ``index``-th evaluation: fresh start states at every
    evaluation, yet the same ones when the run is repeated or resumed."""
    return [int(s) for s in np.random.SeedSequence([run_seed, index]).generate_state(num_envs)]


class Games(NamedTuple):
    """What evaluation games gave, one entry a game: its raw return and its length in agent steps
    (a game that ran to the env's horizon is a stuck policy's sign, and what makes evaluation slow)."""

    returns: list[float]
    lengths: list[int]


def without_per_game(summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` less its per-game lists (kept in summary.json; too long for a line or a CSV row)."""
    return {k: v for k, v in summary.items() if k not in Games._fields}


def play_games(
    act: Callable[[np.ndarray], np.ndarray],
    make_env: Callable[[int], gym.Env],
    episodes: int,
    num_envs: int,
    seed: int,
    index: int = 0,
) -> Games:
    """Play ``episodes`` whole games with ``num_envs`` environments in lockstep.

    Each environment plays an equal share of the episodes (so short games are not
    over-represented), and ``act`` sees one batch of observations per step. The environments
    are seeded by ``evaluation_seeds(seed, index, num_envs)``.
    """
    if episodes < 1:
        raise ValueError(f"evaluation needs at least one episode, got {episodes}")
    num_envs = max(1, min(num_envs, episodes))
    quotas = [episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)]
    envs = [make_env(s) for s in evaluation_seeds(seed, index, num_envs)]
    discrete = isinstance(envs[0].action_space, gym.spaces.Discrete)
    obs = [env.reset()[0] for env in envs]
    games = Games([], [])
    done = [0] * num_envs
    try:
        while any(d < q for d, q in zip(done, quotas)):
            active = [i for i in range(num_envs) if done[i] < quotas[i]]
            actions = act(np.stack([obs[i] for i in active]))
            for i, action in zip(active, actions):
                obs[i], _, terminated, truncated, info = envs[i].step(int(action) if discrete else action)
                if info.get("game_over"):
                    games.returns.append(float(info["episode_return"]))
                    games.lengths.append(int(info["episode_length"]))
                    done[i] += 1
                if terminated or truncated:
                    obs[i] = envs[i].reset()[0]
    finally:
        for env in envs:
            env.close()
    return games
