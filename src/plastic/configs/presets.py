"""Presets as data: a base agent plus components joined by ``+`` (``drq+ln+sam``).

Each component is a small diff of the config, like the paper's ablations; ``plastic`` and
``plastic-dagger`` are names for combinations. Suite defaults adapt the agent to a benchmark
and are applied before the preset.
"""

from __future__ import annotations

from typing import Any

from plastic.configs.schema import Config, apply_overrides

BASES: dict[str, dict[str, Any]] = {
    "drq": {},  # DrQ(ε)-style Rainbow, the paper's base agent (REFERENCE.md)
}

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

SUITE_DEFAULTS: dict[str, dict[str, Any]] = {
    "atari": {},
    # MinAtar (our CPU-scale testbed, not in the paper): 10×10 inputs, so a one-conv encoder, a
    # smaller head and no random-shift augmentation (a 4-pixel shift of a 10-pixel board
    # destroys it); everything else as on Atari.
    "minatar": {
        "network.encoder": "minatar",
        "network.hidden": 128,
        "network.input_scale": 1.0,
        "agent.augment": False,
        "train.learning_starts": 1_000,
    },
}


def preset_names() -> list[str]:
    singles = [f"drq+{c}" for c in COMPONENTS]
    return [*BASES, *ALIASES, *singles]


def resolve_preset(preset: str) -> dict[str, Any]:
    """Overrides of a preset name like ``plastic`` or ``drq+ln+sam``."""
    expanded = ALIASES.get(preset, preset)
    base, *components = expanded.split("+")
    if base not in BASES:
        raise ValueError(
            f"unknown preset {preset!r}; a preset is a base ({', '.join(BASES)}) plus components "
            f"({', '.join(COMPONENTS)}) joined by '+', or one of: {', '.join(preset_names())}"
        )
    overrides = dict(BASES[base])
    for component in components:
        if component not in COMPONENTS:
            raise ValueError(
                f"unknown component {component!r} in preset {preset!r}; "
                f"valid components: {', '.join(COMPONENTS)}"
            )
        overrides.update(COMPONENTS[component])
    return overrides


def build_config(
    suite: str, game: str, preset: str, *, seed: int = 0, overrides: dict[str, Any] | None = None
) -> Config:
    """Suite defaults, then the preset, then the user's overrides (``--set``)."""
    if suite not in SUITE_DEFAULTS:
        raise ValueError(f"unknown suite {suite!r}; valid suites: {', '.join(SUITE_DEFAULTS)}")
    config = Config(suite=suite, game=game, preset=preset, seed=seed)
    apply_overrides(config, SUITE_DEFAULTS[suite])
    apply_overrides(config, resolve_preset(preset))
    apply_overrides(config, overrides or {})
    return config
