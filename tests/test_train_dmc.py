"""DrQ (SAC) on DeepMind Control through the one training loop: a real pixel run end to end,
kill-and-resume equals an uninterrupted run, the per-task settings, and clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("dm_control", reason="dm_control is not installed (pip install -e '.[dmc]')")

from plastic.agents.drq_sac import DrQSACAgent  # noqa: E402
from plastic.cli import main  # noqa: E402
from plastic.configs import build_config, parse_assignments  # noqa: E402
from plastic.configs.schema import flatten  # noqa: E402
from plastic.envs.dmc_tasks import DMC_MEDIUM_TASKS  # noqa: E402
from plastic.experiments.collect import find_runs, resolve_normalization  # noqa: E402
from plastic.train.logger import RunLogger, read_csv  # noqa: E402
from plastic.train.loop import Trainer, _eval_due, train  # noqa: E402
from run_helpers import killed_and_straight_runs  # noqa: E402

TINY_PIXELS = {
    "env.action_repeat": 8, "train.steps": 130, "train.learning_starts": 100,
    "train.replay_ratio": 0.25, "sac.batch_size": 8, "sac.replay_capacity": 500,
    "sac.encoder_channels": "8-8-8-8", "sac.hidden": 32, "train.eval_episodes": 1,
    "train.eval_envs": 1, "train.log_interval": 40, "train.metrics_interval": 120,
    "train.checkpoint_interval": 100, "reset.interval": 40,  # agent steps (the authors' DMC loop)
}


def test_plastic_from_pixels_end_to_end_on_cartpole(tmp_path):
    config = build_config("dmc", "cartpole-swingup", "plastic", overrides=TINY_PIXELS)
    summary = train(config, tmp_path, progress=False)
    for name in ("config.json", "train.csv", "eval.csv", "summary.json", "episodes.csv",
                 "plasticity.csv", "resets.csv", "final_model.pt"):
        assert (tmp_path / name).exists(), name
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert not (tmp_path / "checkpoint.pt").exists()  # kept only with train.keep_final_checkpoint

    expected_updates = math.floor((130 - 100) * 0.25)
    assert summary["steps"] == 130 and summary["updates"] == expected_updates
    # every 40th agent step, whether or not learning has started (step 130 is the last)
    assert summary["resets"] == 3
    assert [r["step"] for r in read_csv(tmp_path / "resets.csv")] == [40, 80, 120]
    assert summary["train_episodes"] == 1  # 1000 env steps at action repeat 8 = 125 agent steps
    episode = read_csv(tmp_path / "episodes.csv")[0]
    assert episode["length"] == 125 and 0 <= episode["return"] <= 1000
    assert summary["episodes"] == 1 and summary["score"] == pytest.approx(summary["returns"][0])
    assert read_csv(tmp_path / "eval.csv")[-1]["score"] == pytest.approx(summary["score"], rel=1e-5)

    last = read_csv(tmp_path / "train.csv")[-1]
    assert last["updates"] == expected_updates and last["critic_loss"] > 0 and last["alpha"] > 0
    assert math.isfinite(last["loss_perturbed"])  # SAM ran
    assert 0 < read_csv(tmp_path / "plasticity.csv")[0]["encoder_active"] <= 1
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["suite"] == "dmc" and saved["env"]["obs"] == "pixels"
    critic = torch.load(tmp_path / "final_model.pt")["critic"]
    first_conv = next(v for k, v in critic.items() if k.startswith("encoder") and v.dim() == 4)
    assert first_conv.shape[1] == 9  # 3 stacked RGB frames

    runs, unfinished = find_runs([tmp_path])  # what `plastic report` reads: the raw return
    assert not unfinished and runs[0].suite == "dmc" and runs[0].score == summary["score"]
    assert resolve_normalization("auto", "dmc") == "none"


def test_the_loop_builds_sac_with_its_replay_settings_and_raw_rewards(tmp_path):
    config = build_config("dmc", "cartpole-swingup", "drq", overrides={
        "env.obs": "state", "env.action_repeat": 8, "sac.replay_capacity": 300, "sac.n_step": 3,
    })
    trainer = Trainer(config, tmp_path, progress=False)
    trainer._setup()
    trainer.logger = RunLogger(tmp_path, tensorboard=False)
    trainer.obs, _ = trainer.env.reset()
    for _ in range(20):
        trainer._env_step()
    assert isinstance(trainer.agent, DrQSACAgent) and trainer.stack == 1
    replay = trainer.replay.state_dict()
    assert replay["config"]["capacity"] == 300 and replay["config"]["n_step"] == 3
    assert not replay["config"]["prioritized"]
    assert replay["config"]["stack_padding"] == "first"  # as DMCEnv fills its stack at reset
    actions = np.asarray(replay["actions"])
    assert actions.dtype == np.float32 and actions.shape == (20, 1)
    rewards = np.asarray(replay["rewards"])
    assert np.all((rewards >= 0) & (rewards <= 8)) and np.any(rewards != np.sign(rewards))  # not clipped
    trainer.logger.close()
    trainer.env.close()


RESUME_ARGS = [
    "train", "dmc", "--task", "cartpole-swingup", "--obs", "state", "--preset", "plastic",
    "--steps", "700", "--no-progress", "--set", "env.action_repeat=8",
    "--set", "train.learning_starts=200", "--set", "sac.batch_size=16",
    "--set", "sac.hidden=32", "--set", "sac.state_encoder_hidden=32",
    "--set", "train.checkpoint_interval=300", "--set", "train.eval_episodes=2",
    "--set", "train.eval_envs=2", "--set", "train.eval_interval=400", "--set", "reset.interval=200",
    "--set", "train.log_interval=100", "--set", "train.metrics_interval=450",
    "--set", "train.threads=1",
]


def assert_resumed_identically(killed, straight) -> dict:
    """The killed-and-resumed run ended where the uninterrupted one did; returns its summary."""
    a, b = (torch.load(d / "final_model.pt") for d in (killed, straight))
    assert set(a) == {"actor", "critic", "critic_target"}
    for network in a:
        for key in a[network]:
            assert torch.equal(a[network][key], b[network][key]), (network, key)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (killed, straight))
    assert sa["returns"] == sb["returns"] and sa["resets"] == sb["resets"]
    assert sa["updates"] == sb["updates"] > 0
    for name in ("episodes.csv", "eval.csv", "resets.csv"):
        assert read_csv(killed / name) == read_csv(straight / name), name
    steps = [r["step"] for r in read_csv(killed / "train.csv")]
    assert steps == sorted(set(steps))  # rows after the checkpoint were not duplicated
    return sa


def test_killed_run_resumes_to_the_same_parameters(tmp_path):
    summary = assert_resumed_identically(*killed_and_straight_runs(RESUME_ARGS, tmp_path))
    # after agent steps 200, 400 and 600 (the last before the checkpoint at 600, whose resumed run
    # must not reset again)
    assert summary["resets"] == 3
    assert [r["step"] for r in read_csv(tmp_path / "killed" / "resets.csv")] == [200, 400, 600]
    assert len(read_csv(tmp_path / "killed" / "episodes.csv")) == 700 // 125
    # fidelity "authors": an evaluation after the first agent step too, then every 400, and the final
    assert [row["step"] for row in read_csv(tmp_path / "killed" / "eval.csv")] == [1, 400, 700]


def test_evaluations_are_due_every_interval_and_after_the_first_step_with_eval_at_start():
    def due(fidelity: str) -> list[int]:
        config = build_config("dmc", "walker-run", "drq", overrides={
            "fidelity": fidelity, "train.steps": 25, "train.eval_interval": 10})
        return [step for step in range(1, 26) if _eval_due(config, step)]

    assert due("authors") == [1, 10, 20]  # the final evaluation (step 25) is the finish's
    assert due("intent") == [10, 20]


PIXEL_RESUME_ARGS = [
    "train", "dmc", "--task", "cartpole-swingup", "--preset", "plastic", "--steps", "160",
    "--no-progress", *(arg for key, value in {
        **TINY_PIXELS, "train.learning_starts": 60, "train.checkpoint_interval": 100,
        "train.metrics_interval": 150, "train.threads": 1,
    }.items() if key != "train.steps" for arg in ("--set", f"{key}={value}")),
]


def test_killed_pixel_run_resumes_to_the_same_parameters(tmp_path):
    """Checkpoint at step 100 with updates and resets done, the episode boundary (step 125)
    after it: the frame stack, replay and renderer state carry over."""
    summary = assert_resumed_identically(*killed_and_straight_runs(PIXEL_RESUME_ARGS, tmp_path))
    assert summary["updates"] == (160 - 60) // 4 and summary["resets"] == 3  # steps 40, 80, 120
    assert summary["train_episodes"] == 1


def test_per_task_settings_land_in_the_resolved_config():
    cheetah = build_config("dmc", "cheetah-run", "plastic", overrides={"train.replay_ratio": "2"})
    assert cheetah.env.action_repeat == 4 and cheetah.sam.rho == 0.002 and cheetah.sam.enabled
    # Evaluations: every 5k agent steps as the authors' code counts (fidelity "authors", the
    # default), every 5k env steps as the paper states (fidelity "intent").
    assert cheetah.train.steps == 2_000_000 // 4 and cheetah.train.eval_interval == 5_000
    stated = build_config("dmc", "cheetah-run", "plastic", overrides={"fidelity": "intent"})
    assert stated.train.eval_interval == 5_000 // 4 and not stated.train.eval_at_start
    assert cheetah.train.eval_at_start
    # Resets: every 100k loop steps at any replay ratio as the authors' script counts, or 100k
    # agent steps in updates at the replay ratio (fidelity "intent")
    assert (cheetah.reset.interval, cheetah.reset.interval_unit) == (100_000, "agent_steps")
    stated_rr2 = build_config("dmc", "cheetah-run", "plastic", overrides={"fidelity": "intent",
                                                                          "train.replay_ratio": 2})
    assert (stated_rr2.reset.interval, stated_rr2.reset.interval_unit) == (200_000, "updates")
    assert cheetah.network.input_scale == 255.0 and cheetah.env.obs == "pixels"
    walker = build_config("dmc", "walker-run", "drq", overrides={"env.obs": "state"})
    assert (walker.env.action_repeat, walker.sam.rho, walker.reset.interval) == (2, 0.01, 100_000)
    assert walker.train.steps == 1_000_000 and walker.network.input_scale == 1.0
    train_cfg = walker.train
    assert (train_cfg.replay_ratio, train_cfg.learning_starts, train_cfg.eval_episodes) == (1.0, 1000, 10)
    # Explicit settings win over the task's; a chosen action repeat rescales the derived counts.
    mine = build_config("dmc", "cheetah-run", "plastic", overrides=parse_assignments([
        "sam.rho=0.05", "env.action_repeat=8", "reset.interval=777"]))
    assert (mine.sam.rho, mine.env.action_repeat, mine.reset.interval) == (0.05, 8, 777)
    assert mine.train.steps == 250_000 and mine.train.eval_interval == 5_000
    mine_stated = build_config("dmc", "cheetah-run", "plastic", overrides={
        "fidelity": "intent", "env.action_repeat": 8})
    assert mine_stated.train.eval_interval == 625
    default_repeat = build_config("dmc", "cheetah-run", "drq", overrides={"env.action_repeat": 0})
    assert default_repeat.env.action_repeat == 4
    assert type(cheetah).from_dict(cheetah.to_dict()) == cheetah


@pytest.mark.parametrize("fidelity", ["intent", "authors"])
@pytest.mark.parametrize("preset", ["drq+ln", "drq+sam", "drq+crelu", "drq+reset", "plastic"])
def test_dmc_presets_are_the_same_components(preset, fidelity):
    def diff(config):
        base = flatten(build_config("dmc", "walker-run", "drq", overrides={"fidelity": fidelity}).to_dict())
        return {k for k, v in flatten(config.to_dict()).items() if base[k] != v and k != "preset"}

    expected = {"drq+ln": {"network.layer_norm"}, "drq+sam": {"sam.enabled"},
                "drq+crelu": {"network.crelu"}, "drq+reset": {"reset.enabled"}}
    if fidelity == "authors":  # their DrQ networks have CReLU whatever the flag: drq has it already
        expected["drq+crelu"] = set()
    everything = set().union(*expected.values())
    config = build_config("dmc", "walker-run", preset, overrides={"fidelity": fidelity})
    assert diff(config) == expected.get(preset, everything)


def test_sac_keys_are_reachable_and_unknown_ones_are_refused(capsys):
    config = build_config("dmc", "walker-run", "drq", overrides=parse_assignments([
        "sac.critic_lr=3e-4", "sac.batch_size=128", "sac.encoder_channels=32-32-32-32"]))
    assert (config.sac.critic_lr, config.sac.batch_size, config.sac.encoder_channels) == \
        (3e-4, 128, "32-32-32-32")
    assert main(["train", "dmc", "--task", "walker-run", "--set", "sac.criticlr=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'sac.criticlr'" in err and "sac.critic_lr" in err
    assert main(["train", "dmc", "--task", "walker-run", "--set", "env.obs=depth"]) == 2
    assert "valid: pixels, state" in capsys.readouterr().err
    assert main(["train", "atari", "--game", "pong", "--obs", "state"]) == 2
    assert "--obs applies to dmc only" in capsys.readouterr().err


def test_unknown_task_lists_dmc_medium_first_then_every_suite_task(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "dmc", "--task", "nosuch-task", "--obs", "state",
                 "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("plastic: error: unknown DeepMind Control task 'nosuch-task'")
    assert "Traceback" not in err and not run_dir.exists()
    assert all(task in err for task in DMC_MEDIUM_TASKS)
    assert err.index("walker-run") < err.index("ball_in_cup-catch") and "humanoid-walk" in err
