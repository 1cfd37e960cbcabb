"""What the training loop needs to know about a suite: its agent, the arguments of its
environments, the frame stack the replay rebuilds, the env steps an agent step takes, the replay's
settings, whether learning sees clipped rewards and the update statistics worth logging.

One loop serves every agent; adding a suite is an entry in ``SUITES``, not a branch in the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch

from plastic.agents.base import Agent
from plastic.configs.schema import Config
from plastic.envs.dmc_tasks import resolve_action_repeat


@dataclass(frozen=True)
class ReplaySettings:
    capacity: int
    batch_size: int
    n_step: int
    gamma: float
    prioritized: bool
    priority_exponent: float = 0.5
    importance_exponent_start: float = 1.0  # annealed linearly to 1; unused without priorities


@dataclass(frozen=True)
class AgentKind:
    build: Callable[[Config, tuple[int, ...], gym.Space, torch.device], Agent]
    replay: Callable[[Config], ReplaySettings]
    train_stats: tuple[str, ...]  # update statistics averaged into train.csv
    sam_stats: tuple[str, ...]  # of those, the ones only SAM produces


@dataclass(frozen=True)
class SuiteRuntime:
    agent: AgentKind
    clip_rewards: bool  # learning sees sign(r); episode logs and evaluations see raw returns
    frame_stack: Callable[[Config], int]
    env_kwargs: Callable[[Config], dict[str, Any]]
    # Env steps per agent step, the x axis of the benchmark's curves (logged as ``env_steps``).
    # Atari-100k and MinAtar count agent steps (Atari's 4 frames are an emulator detail): 1.
    action_repeat: Callable[[Config], int] = lambda _: 1
    # Atari evaluates with train=True envs, as Dopamine's runner does: a life loss ends the
    # episode, and the reset that follows continues the game with a fresh zero-padded stack, so
    # the agent sees the stacks it trained on while the score spans the whole game.
    eval_with_train_envs: bool = False
    stack_padding: str = "zero"  # how the env pads its frame stack at reset (ReplayBuffer's)


def _build_rainbow(config: Config, obs_shape: tuple[int, ...], action_space: gym.Space,
                   device: torch.device) -> Agent:
    from plastic.agents.rainbow import RainbowAgent

    return RainbowAgent(config, obs_shape, int(action_space.n), device)


def _rainbow_replay(config: Config) -> ReplaySettings:
    agent = config.agent
    return ReplaySettings(
        capacity=agent.replay_capacity, batch_size=agent.batch_size, n_step=agent.n_step,
        gamma=agent.gamma, prioritized=agent.prioritized, priority_exponent=agent.priority_exponent,
        importance_exponent_start=agent.importance_exponent_start,
    )


def _build_drq_sac(config: Config, obs_shape: tuple[int, ...], action_space: gym.Space,
                   device: torch.device) -> Agent:
    from plastic.agents.drq_sac import DrQSACAgent

    return DrQSACAgent(config, obs_shape, int(action_space.shape[0]), device)


def _sac_replay(config: Config) -> ReplaySettings:
    sac = config.sac
    return ReplaySettings(capacity=sac.replay_capacity, batch_size=sac.batch_size, n_step=sac.n_step,
                          gamma=sac.gamma, prioritized=False)


RAINBOW = AgentKind(
    build=_build_rainbow, replay=_rainbow_replay,
    train_stats=("loss", "loss_perturbed", "q_mean", "grad_norm", "grad_norm_clean"),
    sam_stats=("loss_perturbed", "grad_norm_clean"),
)

DRQ_SAC = AgentKind(
    build=_build_drq_sac, replay=_sac_replay,
    train_stats=("critic_loss", "loss_perturbed", "q_mean", "target_q_mean", "grad_norm",
                 "grad_norm_clean", "actor_loss", "actor_grad_norm", "alpha", "alpha_loss",
                 "entropy", "log_std_mean"),
    sam_stats=("loss_perturbed", "grad_norm_clean"),
)


def _atari_env_kwargs(config: Config) -> dict[str, Any]:
    env = config.env
    return {"max_episode_steps": env.max_episode_steps, "time_limit": env.time_limit,
            "resize": env.resize, "life_loss_noop": env.life_loss_noop,
            "repeat_action_probability": env.repeat_action_probability}


def _minatar_env_kwargs(config: Config) -> dict[str, Any]:
    return {"max_episode_steps": config.env.max_episode_steps,
            "repeat_action_probability": config.env.repeat_action_probability}


def _dmc_frame_stack(config: Config) -> int:
    return 3 if config.env.obs == "pixels" else 1


def _dmc_env_kwargs(config: Config) -> dict[str, Any]:
    return {"obs": config.env.obs, "frame_stack": _dmc_frame_stack(config),
            "action_repeat": _dmc_action_repeat(config)}


def _dmc_action_repeat(config: Config) -> int:
    # env.action_repeat is resolved by the presets; 0 here still means the task's default.
    return resolve_action_repeat(config.game, config.env.action_repeat)


SUITES: dict[str, SuiteRuntime] = {
    "atari": SuiteRuntime(RAINBOW, clip_rewards=True, frame_stack=lambda _: 4,
                          env_kwargs=_atari_env_kwargs, eval_with_train_envs=True),
    "minatar": SuiteRuntime(RAINBOW, clip_rewards=True, frame_stack=lambda _: 1,
                            env_kwargs=_minatar_env_kwargs),
    "dmc": SuiteRuntime(DRQ_SAC, clip_rewards=False, frame_stack=_dmc_frame_stack,
                        env_kwargs=_dmc_env_kwargs, stack_padding="first",
                        action_repeat=_dmc_action_repeat),
}


def suite_runtime(suite: str) -> SuiteRuntime:
    if suite not in SUITES:
        raise ValueError(f"no training setup for suite {suite!r}; valid suites: {', '.join(SUITES)}")
    return SUITES[suite]
