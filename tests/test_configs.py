"""Presets compose as diffs; unknown keys, bad values and out-of-range values are errors that
name the valid ones."""

from __future__ import annotations

import pytest

from plastic.configs import Config, build_config, preset_names
from plastic.configs.schema import RANGES, UNBOUNDED, flatten


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
    # LN after every encoder conv, CReLU in the head
    assert (c.network.layer_norm_scope, c.network.crelu_scope) == ("encoder", "head")


def test_overrides_are_typed():
    c = build_config("minatar", "breakout", "drq", overrides={
        "sam.rho": "0.05", "train.steps": "1e4", "network.noisy": "false",
    })
    assert c.sam.rho == 0.05 and c.train.steps == 10_000 and c.network.noisy is False
    assert c.network.encoder == "minatar"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sam.rhoo": "1"}, r"unknown config key 'sam.rhoo' \(did you mean sam.rho\?\); valid keys in sam: "),
        ({"sam": "1"}, "unknown config key 'sam'"),
        ({"train.steps": "lots"}, "train.steps: expected int"),
        ({"sam.scope": "neck"}, "valid: encoder, head, all"),
        ({"network.noisy": "maybe"}, "expected true or false"),
        ({"network.layer_norm_scope": "neck"},
         "network.layer_norm_scope: unknown value 'neck'; valid: encoder, head, all"),
        ({"network.crelu_scope": "Head"},
         "network.crelu_scope: unknown value 'Head'; valid: head, encoder, all"),
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
    with pytest.raises(ValueError, match="preset 'drq\\+reset\\+ln\\+reset' names 'reset' more than once"):
        build_config("atari", "pong", "drq+reset+ln+reset")
    with pytest.raises(ValueError, match="valid suites: atari, minatar"):
        build_config("mujoco", "x", "drq")
    assert {"drq", "plastic", "plastic-dagger", "drq+ln", "drq+sam"} <= set(preset_names())


def test_an_atari_game_in_camel_case_is_named_as_reports_and_sweeps_name_it():
    assert build_config("atari", "MsPacman", "drq").game == "ms_pacman"
    assert build_config("atari", "ms_pacman", "drq").game == "ms_pacman"
    assert build_config("minatar", "space_invaders", "drq").game == "space_invaders"


@pytest.mark.parametrize("key", ["suite", "game", "preset", "seed"])
def test_the_keys_that_name_a_run_are_not_overrides(key):
    with pytest.raises(ValueError, match=f"{key} names the run and its directory"):
        build_config("minatar", "breakout", "drq", overrides={key: "7"})


def test_every_entry_point_refuses_the_same_keys_as_naming_a_run():
    """build_config refuses them for every path; plastic train and plastic sweep refuse them
    first, each naming its own flag: the three lists must not drift apart."""
    from plastic.cli import FLAG_KEYS
    from plastic.configs.presets import RUN_NAME_KEYS
    from plastic.experiments.benchmarks import BENCHMARKS

    assert set(FLAG_KEYS) == set(RUN_NAME_KEYS) == {"suite", "game", "preset", "seed"}
    rl = [bench for bench in BENCHMARKS.values() if bench.suite != "synthetic"]
    assert rl and all(set(bench.run_name_keys) == set(RUN_NAME_KEYS) for bench in rl)


def test_round_trip_through_dict():
    c = build_config("atari", "breakout", "plastic", seed=3, overrides={"sam.rho": 0.2})
    assert Config.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("reset.interval", "0", "reset.interval = 0 is out of range; valid: >= 1"),
        ("train.log_interval", "0", "train.log_interval = 0 is out of range; valid: >= 1"),
        ("agent.target_ema", "2", "agent.target_ema = 2.0 is out of range; valid: [0, 1]"),
        ("network.num_atoms", "1", "network.num_atoms = 1 is out of range; valid: >= 2"),
        ("train.steps", "-5", "train.steps = -5 is out of range; valid: >= 1"),
        ("agent.batch_size", "0", "agent.batch_size = 0 is out of range; valid: >= 1"),
        ("train.replay_ratio", "nan", "train.replay_ratio = nan is out of range; valid: > 0"),
        ("reset.encoder_shrink", "1", "reset.encoder_shrink = 1.0 is out of range; valid: [0, 1)"),
        ("sac.critic_tau", "0", "sac.critic_tau = 0.0 is out of range; valid: (0, 1]"),
        ("env.repeat_action_probability", "1.5", "env.repeat_action_probability = 1.5 is out of range"),
        ("network.v_min", "10", "network.v_min (10) must be below network.v_max (10)"),
        ("agent.replay_capacity", "10", "agent.replay_capacity (10) must exceed agent.n_step (10)"),
    ],
)
def test_out_of_range_values_are_refused_naming_key_value_and_range(key, value, message):
    suite, game = ("dmc", "cheetah-run") if key.startswith("sac.") else ("minatar", "breakout")
    with pytest.raises(ValueError) as error:
        build_config(suite, game, "drq", overrides={key: value})
    assert message in str(error.value)


@pytest.mark.parametrize(("suite", "game", "key", "message"), [
    ("dmc", "cheetah-run", "agent.lr",
     "agent.lr is a setting of the Rainbow agent (suites atari, minatar), which dmc does not run: "
     "dmc runs DrQ (SAC), whose settings are sac.*"),
    ("minatar", "breakout", "sac.n_step",
     "sac.n_step is a setting of the DrQ (SAC) agent (suites dmc), which minatar does not run: "
     "minatar runs Rainbow, whose settings are agent.*; did you mean agent.n_step?"),
    ("atari", "pong", "sac.actor_lr",
     "sac.actor_lr is a setting of the DrQ (SAC) agent (suites dmc), which atari does not run: "
     "atari runs Rainbow, whose settings are agent.*"),
])
def test_a_key_of_the_other_agents_section_is_refused_not_ignored(suite, game, key, message):
    with pytest.raises(ValueError) as error:
        build_config(suite, game, "plastic", overrides={key: "1"})
    assert str(error.value) == message
    build_config(suite, game, "plastic", overrides={"sam.rho": 0.05})  # shared sections pass


def test_every_numeric_key_has_a_range_and_every_default_is_in_it():
    numeric = {k for k, v in flatten(Config().to_dict()).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert numeric == set(RANGES) | UNBOUNDED
    for suite, game in (("atari", "pong"), ("minatar", "breakout"), ("dmc", "cheetah-run")):
        for preset in ("drq", "plastic", "plastic-dagger"):
            build_config(suite, game, preset)  # validates


def test_atari_sticky_actions_need_checkpoints_off():
    with pytest.raises(ValueError, match="needs train.checkpoint_interval=0"):
        build_config("atari", "pong", "drq", overrides={"env.repeat_action_probability": 0.25})
    minatar = build_config("minatar", "breakout", "drq", overrides={"env.repeat_action_probability": 0.1})
    assert minatar.env.repeat_action_probability == 0.1  # MinAtar snapshots hold the sticky action


def test_bad_values_stop_the_cli_and_train_before_a_run_directory_exists(tmp_path, capsys):
    from plastic.cli import main
    from plastic.train.loop import train

    run_dir = tmp_path / "run"
    assert main(["train", "minatar", "--game", "breakout", "--steps", "-5", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err == "plastic: error: train.steps = -5 is out of range; valid: >= 1\n"
    assert main(["train", "minatar", "--game", "breakout", "--set", "agent.batch_size=0",
                 "--run-dir", str(run_dir)]) == 2
    assert "agent.batch_size = 0" in capsys.readouterr().err
    assert main(["train", "minatar", "--game", "breakout", "--set", "network.crelu_scope=neck",
                 "--run-dir", str(run_dir)]) == 2
    assert "network.crelu_scope: unknown value 'neck'; valid: head, encoder, all" in capsys.readouterr().err
    config = build_config("minatar", "breakout", "drq")
    config.reset.interval = 0  # a config built in code, not through build_config
    with pytest.raises(ValueError, match="reset.interval = 0 is out of range"):
        train(config, run_dir, progress=False)
    config = build_config("minatar", "breakout", "drq+ln")
    config.network.layer_norm_scope = "neck"
    with pytest.raises(ValueError, match="network.layer_norm_scope: unknown value 'neck'; valid: encoder"):
        train(config, run_dir, progress=False)
    assert not run_dir.exists()


def test_one_value_parser_serves_the_rl_and_the_synthetic_configs():
    from plastic.configs.schema import coerce
    from plastic.synthetic import SyntheticConfig

    assert coerce("k", "none", float | None) is None and coerce("k", None, bool | None) is None
    assert coerce("k", " 0.5", float | None) == 0.5 and coerce("k", "1e3", int) == 1000
    config = SyntheticConfig.from_dict({"task": "input", "method": "plastic", "lr": "none",
                                        "chunks": "20", "hessian": "yes", "weight_decay": "1e-4"})
    assert (config.lr, config.chunks, config.hessian, config.weight_decay) == (None, 20, True, 1e-4)
    for key, value, message in (("chunks", "x", "chunks: expected int, got 'x'"),
                                ("hessian", "maybe", "hessian: expected true or false, got 'maybe'")):
        with pytest.raises(ValueError, match=message):
            SyntheticConfig.from_dict({"task": "input", "method": "plastic", key: value})


@pytest.mark.parametrize(("task", "steps", "repeat", "reset_interval"), [
    ("cheetah-run", 2_000_000 // 4, 4, 100_000),  # DMC-Medium: the paper's
    ("walker-walk", 500_000 // 2, 2, 25_000),  # short tasks: the authors' script's own tables
    ("cartpole-swingup", 500_000 // 8, 8, 25_000),
    ("hopper-stand", 1_000_000 // 2, 2, 50_000),
    ("humanoid-run", 2_000_000 // 2, 2, 100_000),  # any other task: the defaults
])
def test_dmc_task_settings_reach_the_config(task, steps, repeat, reset_interval):
    config = build_config("dmc", task, "plastic")
    assert (config.train.steps, config.env.action_repeat) == (steps, repeat)
    assert config.reset.interval == reset_interval * config.train.replay_ratio
    # the user's keys win over the task's
    mine = build_config("dmc", task, "plastic", overrides={"reset.interval": 7, "train.steps": 9})
    assert (mine.reset.interval, mine.train.steps) == (7, 9)
