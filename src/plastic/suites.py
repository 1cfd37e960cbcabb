"""The suites plastic trains on, one ``Suite`` record each: its environments, its agent, the config
section that agent owns, its config defaults, its games (or tasks), and what the training loop
needs to know (frame stack, action repeat, reward clipping, how evaluation makes its envs).

Adding a suite is an entry in ``SUITES``, not a branch in the loop, the CLI, the config checks or
the sweeps. Environments and agents are imported only when used, so that reading a config needs
neither dm_control nor a network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gymnasium as gym
    import torch

    from plastic.agents.base import Agent
    from plastic.configs.schema import Config


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
    name: str
    config_section: str  # the section of the config only this agent reads ("agent", "sac")
    build: Callable[[Config, tuple[int, ...], gym.Space, torch.device], Agent]
    replay: Callable[[Config], ReplaySettings]
    train_stats: tuple[str, ...]  # update statistics averaged into train.csv
    sam_stats: tuple[str, ...]  # of those, the ones only SAM produces


@dataclass(frozen=True)
class Suite:
    name: str
    agent: AgentKind
    games: Callable[[], tuple[str, ...]]  # the benchmark's games or tasks
    make_env: Callable[..., gym.Env]  # (name, seed, *, train, **env_kwargs)
    env_kwargs: Callable[[Config], dict[str, Any]]  # the config's settings for make_env
    frame_stack: Callable[[Config], int]
    clip_rewards: bool  # learning sees sign(r); episode logs and evaluations see raw returns
    # Config keys the suite sets over the dataclass defaults (the presets come on top).
    defaults: dict[str, Any] = field(default_factory=dict)
    # Env steps per agent step, the x axis of the benchmark's curves (logged as ``env_steps``).
    # Atari-100k and MinAtar count agent steps (Atari's 4 frames are an emulator detail): 1.
    action_repeat: Callable[[Config], int] = lambda _: 1
    # Atari evaluates with train=True envs, as Dopamine's runner does: a life loss ends the
    # episode, and the reset that follows continues the game with a fresh zero-padded stack, so
    # the agent sees the stacks it trained on while the score spans the whole game.
    eval_with_train_envs: bool = False
    stack_padding: str = "zero"  # how the env pads its frame stack at reset (ReplayBuffer's)
    # Rainbow suites: the frame side and the suite's own encoder (an encoder needs frames of at
    # least its minimum size: ``Config.validate``). None where the agent has its own (DMC).
    frame_size: int | None = None
    encoder: str | None = None
    # The name a game is stored under in configs (and run directories): Atari's CamelCase names
    # (``MsPacman``) become snake_case, the names scores, reports and sweeps use.
    game_name: Callable[[str], str] = lambda game: game
    # Names outside ``games()`` that the suite can still make (any ale-py game, any dm_control
    # task): the stored name, or ValueError naming the valid ones. None: ``games()`` only.
    check_other_game: Callable[[str], str] | None = None

    def check_game(self, game: str) -> str:
        """The name ``game`` is stored under, or ``ValueError`` listing the valid names: checked
        when a config is built, before a run (or ``--print-config``) does anything."""
        name = self.game_name(game)
        if name in self.games():
            return name
        if self.check_other_game is None:
            raise ValueError(f"unknown {self.name} game {game!r}; valid: {', '.join(self.games())}")
        return self.check_other_game(game)


# ----------------------------------------------------------------------------------- the agents
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
    name="Rainbow", config_section="agent", build=_build_rainbow, replay=_rainbow_replay,
    train_stats=("loss", "loss_perturbed", "q_mean", "grad_norm", "grad_norm_clean"),
    sam_stats=("loss_perturbed", "grad_norm_clean"),
)

DRQ_SAC = AgentKind(
    name="DrQ (SAC)", config_section="sac", build=_build_drq_sac, replay=_sac_replay,
    train_stats=("critic_loss", "loss_perturbed", "q_mean", "target_q_mean", "grad_norm",
                 "grad_norm_clean", "actor_loss", "actor_grad_norm", "alpha", "alpha_loss",
                 "entropy", "log_std_mean"),
    sam_stats=("loss_perturbed", "grad_norm_clean"),
)


# ------------------------------------------------------------------------------ the environments
def _make_atari(name: str, seed: int, *, train: bool, **kwargs: Any) -> gym.Env:
    from plastic.envs.atari import make_atari_env

    return make_atari_env(name, seed, train=train, **kwargs)


def _make_minatar(name: str, seed: int, *, train: bool, **kwargs: Any) -> gym.Env:
    from plastic.envs.minatar import make_minatar_env

    return make_minatar_env(name, seed, train=train, **kwargs)


def _make_dmc(name: str, seed: int, *, train: bool, **kwargs: Any) -> gym.Env:
    # Imported only here so that Atari and MinAtar never need dm_control installed.
    from plastic.envs.dmc import make_dmc_env

    return make_dmc_env(name, seed, train=train, **kwargs)


def _atari_games() -> tuple[str, ...]:
    from plastic.envs.scores import ATARI_100K_GAMES

    return ATARI_100K_GAMES


def _atari_game_name(game: str) -> str:
    from plastic.envs.scores import camel_to_snake

    return camel_to_snake(game)


def _ale_game(game: str) -> str:
    from plastic.envs.atari import ale_game_id

    return ale_game_id(game)


def _minatar_games() -> tuple[str, ...]:
    from plastic.envs.minatar import MINATAR_GAMES

    return MINATAR_GAMES


def _dmc_medium_tasks() -> tuple[str, ...]:
    from plastic.envs.dmc_tasks import DMC_MEDIUM_TASKS

    return DMC_MEDIUM_TASKS


def _dmc_task(task: str) -> str:
    from plastic.envs.dmc_tasks import check_dmc_task

    return check_dmc_task(task)


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
    from plastic.envs.dmc_tasks import resolve_action_repeat

    # env.action_repeat is resolved by the presets; 0 here still means the task's default.
    return resolve_action_repeat(config.game, config.env.action_repeat)


SUITES: dict[str, Suite] = {
    "atari": Suite(
        "atari", RAINBOW, games=_atari_games, make_env=_make_atari, env_kwargs=_atari_env_kwargs,
        frame_stack=lambda _: 4, clip_rewards=True, eval_with_train_envs=True,
        frame_size=84, encoder="nature", game_name=_atari_game_name, check_other_game=_ale_game),
    # MinAtar (our CPU-scale testbed, not in the paper): 10×10 inputs, so a one-conv encoder, a
    # smaller head and no random-shift augmentation (a 4-pixel shift of a 10-pixel board
    # destroys it); everything else as on Atari.
    "minatar": Suite(
        "minatar", RAINBOW, games=_minatar_games, make_env=_make_minatar,
        env_kwargs=_minatar_env_kwargs, frame_stack=lambda _: 1, clip_rewards=True,
        defaults={"network.encoder": "minatar", "network.hidden": 128, "network.input_scale": 1.0,
                  "agent.augment": False, "train.learning_starts": 1_000},
        frame_size=10, encoder="minatar"),
    # DMC-Medium (the paper's appendix and the authors' configs): DrQ (SAC) with the `sac`
    # section's settings; one update per agent step after 1,000 agent steps; 10 evaluation
    # episodes. Step counts, SAM's ρ, the Reset interval and the evaluation interval depend on
    # the task: ``plastic.configs.presets.dmc_task_defaults``.
    "dmc": Suite(
        "dmc", DRQ_SAC, games=_dmc_medium_tasks, make_env=_make_dmc, env_kwargs=_dmc_env_kwargs,
        frame_stack=_dmc_frame_stack, clip_rewards=False, action_repeat=_dmc_action_repeat,
        stack_padding="first", check_other_game=_dmc_task,
        defaults={"train.replay_ratio": 1.0, "train.learning_starts": 1_000,
                  "train.eval_episodes": 10,
                  "train.eval_envs": 10},  # ours: the 10 episodes run in lockstep, one env each
    ),
}


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; valid suites: {', '.join(SUITES)}")
    return SUITES[name]
