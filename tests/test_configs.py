"""Presets compose as diffs; unknown keys and values are errors that list the valid ones."""

from __future__ import annotations

import pytest

from plastic.configs import Config, build_config, preset_names
from plastic.configs.schema import flatten


def diff(a: Config, b: Config) -> dict:
    fa, fb = flatten(a.to_dict()), flatten(b.to_dict())
    return {k: fb[k] for k in fa if fa[k] != fb[k] and k != "preset"}


def test_plastic_is_drq_plus_four_components():
    drq = build_config("atari", "pong", "drq")
    assert diff(drq, build_config("atari", "pong", "plastic")) == {
        "network.layer_norm": True, "network.crelu": True, "sam.enabled": True, "reset.enabled": True,
    }
    assert diff(drq, build_config("atari", "pong", "plastic-dagger")) == {
        "network.layer_norm": True, "reset.enabled": True,
    }
    assert diff(build_config("atari", "pong", "drq+sam+reset"),
                build_config("atari", "pong", "drq+reset+sam")) == {}


def test_paper_defaults():
    c = build_config("atari", "pong", "plastic")
    assert (c.agent.n_step, c.agent.batch_size, c.agent.gamma) == (10, 32, 0.99)
    assert c.agent.lr == pytest.approx(2**0.5 * 1e-4, rel=1e-3)
    assert (c.sam.rho, c.sam.scope, c.reset.interval, c.reset.scope) == (0.1, "encoder", 40_000, "head")
    assert (c.train.replay_ratio, c.train.learning_starts, c.train.steps) == (2.0, 2000, 100_000)


def test_overrides_are_typed():
    c = build_config("minatar", "breakout", "drq", overrides={
        "sam.rho": "0.05", "train.steps": "1e4", "network.noisy": "false",
    })
    assert c.sam.rho == 0.05 and c.train.steps == 10_000 and c.network.noisy is False
    assert c.network.encoder == "minatar"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sam.rhoo": "1"}, "unknown config key 'sam.rhoo'; valid keys: .*sam.rho"),
        ({"sam": "1"}, "unknown config key 'sam'"),
        ({"train.steps": "lots"}, "train.steps: expected int"),
        ({"sam.scope": "neck"}, "valid: encoder, head, all"),
        ({"network.noisy": "maybe"}, "expected true or false"),
    ],
)
def test_bad_overrides(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_config("atari", "pong", "drq", overrides=overrides)


def test_bad_presets_and_suites():
    with pytest.raises(ValueError, match="unknown component 'foo'.*valid components: ln, crelu"):
        build_config("atari", "pong", "drq+foo")
    with pytest.raises(ValueError, match="unknown preset 'dqn'.*plastic-dagger"):
        build_config("atari", "pong", "dqn")
    with pytest.raises(ValueError, match="valid suites: atari, minatar"):
        build_config("mujoco", "x", "drq")
    assert {"drq", "plastic", "plastic-dagger", "drq+ln", "drq+sam"} <= set(preset_names())


def test_round_trip_through_dict():
    c = build_config("atari", "breakout", "plastic", seed=3, overrides={"sam.rho": 0.2})
    assert Config.from_dict(c.to_dict()) == c
