"""Presets as data: a base agent plus components joined by ``+`` (``drq+ln+sam``).

Each component is a small diff of the config, like the paper's ablations; ``plastic`` and
``plastic-dagger`` are names for combinations. Suite defaults (``plastic.suites``) adapt the agent
to a benchmark and are applied before the preset; per-task defaults (DMC) are derived last, for every key the
preset and the user left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plastic.configs.schema import Config, apply_overrides, check_agent_section, close_matches
from plastic.envs.dmc_tasks import resolve_action_repeat, task_settings
from plastic.suites import get_suite

# The base agent is the config's defaults: on Atari/MinAtar DrQ(ε)-style Rainbow, the paper's base
# agent; on DMC DrQ (SAC), as in the paper. Every preset is it plus components.
BASE = "drq"
# Config keys that name a run (its directory): the caller gives them, never an override.
RUN_NAME_KEYS = ("suite", "game", "preset", "seed")

COMPONENTS: dict[str, dict[str, Any]] = {
    "ln": {"network.layer_norm": True},
    "crelu": {"network.crelu": True},
    "sam": {"sam.enabled": True},
    "reset": {"reset.enabled": True},
}

ALIASES: dict[str, str] = {
    "plastic": "drq+ln+crelu+sam+reset",
    "plastic-dagger": "drq+ln+reset",  # PLASTIC†: no SAM, no CReLU; encoder shrink at RR ≥ 4
}

DMC_EVAL_EVERY_ENV_STEPS = 5_000

# The fidelity profiles (README, "Fidelity"): "intent" is the method as the paper states it (the
# dataclass defaults); "authors" the update the authors' code runs, which produced the published
# numbers, as one diff per suite. Each key is also a knob of its own.
AUTHORS_RAINBOW: dict[str, Any] = {
    "sam.exclusion": "authors",  # the head is perturbed too; clean + perturbed gradient
    "sam.preclip": True,
    "sam.perturbed_pass": "fresh",
    "sam.all_after_reset": True,
    "reset.optimizer_state": "all",
    "reset.layer_norm_toward": "online",
    "network.dueling_grad_scale": 2 ** -0.5,
    "agent.importance_anneal": "updates",
}
AUTHORS_ATARI_ENV: dict[str, Any] = {
    "env.resize": "bilinear",
    "env.time_limit": "agent_steps",
    "env.life_loss_noop": True,
}
AUTHORS_DMC: dict[str, Any] = {
    "network.crelu": True,  # their use_CReLU flag never reaches the networks, whose default is on
    "sam.exclusion": "authors-dmc",  # one ρ-ball over the whole critic; the head steps clean
    "sac.conv_padding": "same",  # flax's SAME: 0 before, 1 after on even sizes
    "sac.log_std_gain": 1.0,  # NormalTanhPolicy's log_std_scale
    "train.eval_at_start": True,  # their `i == 1` evaluation
    "reset.interval_unit": "agent_steps",  # their loop counts its reset_interval in steps
}  # and an evaluation every 5k agent steps, not env steps: dmc_task_defaults
FIDELITY_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "intent": {"atari": {}, "minatar": {}, "dmc": {}},
    "authors": {"atari": {**AUTHORS_RAINBOW, **AUTHORS_ATARI_ENV}, "minatar": AUTHORS_RAINBOW,
                "dmc": AUTHORS_DMC},
}
DEFAULT_FIDELITY = "authors"  # the paper's presets run the update that produced its numbers


def dmc_task_defaults(config: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """(resolved, defaults) for a DMC task, computed from the config after all overrides.

    ``resolved`` always applies: ``env.action_repeat`` 0 becomes the task's. ``defaults`` apply
    where the preset and the user set nothing: the paper's 2M env steps as agent steps, SAM's ρ,
    a Reset every 100k agent steps (25k-50k on the authors' short tasks; in updates at the replay
    ratio, or as loop steps with ``reset.interval_unit="agent_steps"``), an evaluation every 5k env
    steps (fidelity "authors": every 5k agent steps, as their code counts), and pixels divided
    by 255 (state vectors as they are).
    """
    settings = task_settings(config.game)
    repeat = resolve_action_repeat(config.game, config.env.action_repeat)
    # The authors' train_pixels.py counts its eval_interval (5k) in agent steps.
    eval_interval = 5_000 if config.fidelity == "authors" else max(1, DMC_EVAL_EVERY_ENV_STEPS // repeat)
    defaults = {
        "train.steps": settings.env_steps // repeat,
        "train.eval_interval": eval_interval,
        "sam.rho": settings.sam_rho,
        "reset.interval": settings.reset_interval_agent_steps if config.reset.interval_unit == "agent_steps"
        else max(1, round(settings.reset_interval_agent_steps * config.train.replay_ratio)),
        "network.input_scale": 255.0 if config.env.obs == "pixels" else 1.0,
    }
    return {"env.action_repeat": repeat}, defaults


TASK_DEFAULTS: dict[str, Callable[[Config], tuple[dict[str, Any], dict[str, Any]]]] = {
    "dmc": dmc_task_defaults,
}


def preset_names() -> list[str]:
    singles = [f"drq+{c}" for c in COMPONENTS]
    return [BASE, *ALIASES, *singles]


def _did_you_mean(word: str, candidates: list[str]) -> str:
    matches = close_matches(word, candidates)
    return f" (did you mean {' or '.join(matches)}?)" if matches else ""


def preset_components(preset: str) -> tuple[str, ...]:
    """The components of a preset name like ``plastic`` or ``drq+ln+sam``, in the order given."""
    expanded = ALIASES.get(preset, preset)
    base, *components = expanded.split("+")
    if base != BASE:
        raise ValueError(
            f"unknown preset {preset!r}{_did_you_mean(preset, [BASE, *ALIASES])}; a preset is the "
            f"base ({BASE}) plus components ({', '.join(COMPONENTS)}) joined by '+', "
            f"or one of: {', '.join(preset_names())}"
        )
    for component in components:
        if component not in COMPONENTS:
            raise ValueError(
                f"unknown component {component!r}{_did_you_mean(component, list(COMPONENTS))} in "
                f"preset {preset!r}; valid components: {', '.join(COMPONENTS)}"
            )
    repeated = sorted({c for c in components if components.count(c) > 1}, key=components.index)
    if repeated:
        raise ValueError(f"preset {preset!r} names {', '.join(map(repr, repeated))} more than once; "
                         f"name each component once")
    return tuple(components)


def resolve_preset(preset: str) -> dict[str, Any]:
    """Overrides of a preset name like ``plastic`` or ``drq+ln+sam``."""
    overrides: dict[str, Any] = {}
    for component in preset_components(preset):
        overrides.update(COMPONENTS[component])
    return overrides


def build_config(
    suite: str, game: str, preset: str, *, seed: int = 0, overrides: dict[str, Any] | None = None
) -> Config:
    """Suite defaults, the fidelity profile (``fidelity``, default "authors"), the preset, then the
    user's overrides (``--set``); validated, the game too (an unknown one raises ``ValueError``
    listing the valid ones). An Atari game given in CamelCase (``MsPacman``) is stored in
    snake_case, the name scores, reports and sweeps use."""
    naming = [key for key in RUN_NAME_KEYS if key in (overrides or {})]
    if naming:
        raise ValueError(f"{naming[0]} names the run and its directory: give it as the run's "
                         f"{naming[0]}, not as an override (--set)")
    suite_defaults = get_suite(suite).defaults
    check_agent_section(suite, overrides or {})
    config = Config(suite=suite, game=get_suite(suite).check_game(game), preset=preset, seed=seed)
    explicit = {**resolve_preset(preset), **(overrides or {})}
    apply_overrides(config, suite_defaults)
    apply_overrides(config, {"fidelity": explicit.get("fidelity", DEFAULT_FIDELITY)})
    apply_overrides(config, FIDELITY_PROFILES[config.fidelity][suite])
    apply_overrides(config, explicit)
    if suite in TASK_DEFAULTS:
        resolved, defaults = TASK_DEFAULTS[suite](config)
        apply_overrides(config, {**{k: v for k, v in defaults.items() if k not in explicit}, **resolved})
    return config.validate()
