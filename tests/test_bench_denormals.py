"""benchmarks/bench_denormals.py: the share of subnormal optimizer state by hand, and the benchmark
on a real (tiny) run's checkpoint, which it reads and leaves as it was."""

from __future__ import annotations

import types

import pytest
import torch

from plastic import runtime
from plastic.cli import main as plastic_main
from script_module import load_script

bench = load_script("benchmarks/bench_denormals.py")


def test_subnormal_share_of_the_optimizer_state_by_hand():
    weight = torch.nn.Parameter(torch.zeros(4))
    optimizer = torch.optim.Adam([weight])
    optimizer.state[weight] = {"step": torch.tensor(3.0),  # one element: not counted
                               "exp_avg": torch.tensor([1e-39, 0.0, 1.0, -2e-39]),
                               "exp_avg_sq": torch.tensor([1e-30, 5e-40, 0.0, 2e-38])}
    # subnormal: 1e-39, -2e-39, 5e-40 (0 is not; 1e-30 and 2e-38 are normal floats): 3 of 8
    assert bench.subnormal_fraction(optimizer) == 3 / 8


def test_kept_and_flushed_rounds_alternate_from_the_restored_state():
    with runtime.denormals_flushed() as flushed:
        if not flushed:
            pytest.skip("this CPU cannot flush subnormal floats")
    weight = torch.zeros(3)
    calls: list[str] = []

    def restore() -> None:
        calls.append("restore")
        weight.copy_(torch.tensor([1e-40, 1.0, -3e-39]))  # two subnormals and a normal float

    def run_steps() -> None:
        calls.append("flushed" if runtime.denormals_are_flushed() else "kept")
        weight.mul_(1.0)

    median, after = bench.time_kept_and_flushed(restore, run_steps, lambda: [weight], rounds=3)
    assert set(median) == {"kept", "flushed"} and all(ms >= 0 for ms in median.values())
    # a warm-up round and three timed ones, each mode once a round, in alternating order
    assert calls == ["restore", "kept", "restore", "flushed", "restore", "flushed", "restore", "kept",
                     "restore", "kept", "restore", "flushed", "restore", "flushed", "restore", "kept"]
    assert after["kept"][0].tolist() == pytest.approx([1e-40, 1.0, -3e-39], rel=1e-6)
    assert after["flushed"][0].tolist() == [0.0, 1.0, 0.0]  # flushing zeroed the subnormals
    assert not runtime.denormals_are_flushed()  # and the mode was restored after


def test_the_benchmark_times_a_runs_checkpoint_without_writing_it(tmp_path):
    run = tmp_path / "run"
    assert plastic_main(["train", "minatar", "--game", "breakout", "--preset", "drq", "--steps", "300",
                         "--run-dir", str(run), "--no-progress", "--set", "train.learning_starts=100",
                         "--set", "train.eval_episodes=2", "--set", "train.eval_envs=2",
                         "--set", "train.keep_final_checkpoint=true"]) == 0
    files = {path: path.stat().st_mtime_ns for path in run.rglob("*")}
    result = bench.bench_denormals(run, rounds=2, per_round=2)
    assert {path: path.stat().st_mtime_ns for path in run.rglob("*")} == files
    assert (result["suite"], result["preset"], result["step"]) == ("minatar", "drq", 300)
    assert result["ms_per_update_kept"] > 0 and result["ms_per_update_flushed"] > 0
    assert result["speedup"] == pytest.approx(
        result["ms_per_update_kept"] / result["ms_per_update_flushed"], abs=0.01)
    assert 0.0 <= result["subnormal_optimizer_state"] < 1.0
    # 200 updates leave no moment small enough to flush (from ~1e-3 that takes ~800 updates without
    # a gradient): both modes, from the same state and draws, must give the same bits
    assert result["parameters_bit_identical"] and result["max_abs_parameter_difference"] == 0.0
    assert not runtime.denormals_are_flushed()  # each timed mode was a block: the setting is back
    with pytest.raises(ValueError, match="no checkpoint.pt"):
        bench.bench_denormals(tmp_path / "elsewhere")


def test_the_benchmark_times_a_dmc_runs_sac_update(tmp_path):
    pytest.importorskip("dm_control", reason="dm_control is not installed (pip install -e '.[dmc]')")
    run = tmp_path / "run"
    assert plastic_main(["train", "dmc", "--task", "cartpole-swingup", "--obs", "state",
                         "--preset", "plastic", "--steps", "150", "--run-dir", str(run), "--no-progress",
                         "--set", "env.action_repeat=8", "--set", "train.learning_starts=100",
                         "--set", "sac.batch_size=16", "--set", "sac.hidden=32",
                         "--set", "sac.state_encoder_hidden=32", "--set", "train.eval_episodes=1",
                         "--set", "train.eval_envs=1", "--set", "train.keep_final_checkpoint=true"]) == 0
    result = bench.bench_denormals(run, rounds=2, per_round=2)
    assert (result["suite"], result["preset"], result["step"]) == ("dmc", "plastic", 150)
    assert result["ms_per_update_kept"] > 0 and result["ms_per_update_flushed"] > 0
    assert result["parameters_bit_identical"] and result["max_abs_parameter_difference"] == 0.0


def test_the_sac_agents_three_optimizers_and_trained_tensors_are_counted():
    critic, actor = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
    log_alpha = torch.zeros((), requires_grad=True)
    optimizers = [torch.optim.Adam(critic.parameters()), torch.optim.Adam(actor.parameters()),
                  torch.optim.Adam([log_alpha])]
    for optimizer, tensors in zip(optimizers, ([critic.weight], [actor.weight], [log_alpha])):
        for tensor in tensors:
            optimizer.state[tensor] = {"exp_avg": torch.full((4,), 1e-39)}  # 4 subnormal entries each
    optimizers[0].state[critic.bias] = {"exp_avg": torch.ones(4)}
    sac = types.SimpleNamespace(critic=critic, actor=actor, log_alpha=log_alpha,
                                critic_optimizer=optimizers[0], actor_optimizer=optimizers[1],
                                alpha_optimizer=optimizers[2])
    assert bench.agent_optimizers(sac) == optimizers
    assert bench.subnormal_fraction(*bench.agent_optimizers(sac)) == 12 / 16
    assert [t.shape for t in bench.trained_parameters(sac)] == [(3, 2), (3,), (1, 3), (1,), ()]
    rainbow = types.SimpleNamespace(online=actor, optimizer=optimizers[1])
    assert bench.agent_optimizers(rainbow) == [optimizers[1]]
    assert bench.trained_parameters(rainbow) == list(actor.parameters())
