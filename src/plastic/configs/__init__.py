"""Run configuration: typed schema and presets as data."""

from plastic.configs.presets import build_config, preset_names, resolve_preset
from plastic.configs.schema import Config, apply_overrides, parse_assignments, valid_keys

__all__ = [
    "Config", "apply_overrides", "build_config", "parse_assignments", "preset_names",
    "resolve_preset", "valid_keys",
]
