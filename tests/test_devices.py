"""Device selection: auto picks CUDA when torch sees a GPU, a missing GPU is a clear error, and
(on a machine with CUDA) both agents train end to end on it."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from plastic.configs import build_config
from plastic.runtime import resolve_device
from plastic.train.loop import train


def test_auto_picks_cuda_only_when_torch_sees_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA GPU; use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="valid: auto, cpu, cuda, cuda:N"):
        resolve_device("tpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("suite", "game", "overrides"), [
    ("minatar", "breakout", {"agent.batch_size": 8, "agent.replay_capacity": 1000}),
    ("minatar", "breakout", {"agent.batch_size": 8, "agent.replay_capacity": 1000, "train.cuda_graph": True}),
    *[pytest.param("dmc", "cartpole-swingup", {
        "env.obs": "state", "env.action_repeat": 8, "sac.batch_size": 16, "sac.hidden": 32,
        "sac.state_encoder_hidden": 32, "train.cuda_graph": graphed},
        marks=pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason="needs the dmc extra"))
      for graphed in (False, True)],
])
def test_plastic_trains_on_cuda(tmp_path, suite, game, overrides):
    config = build_config(suite, game, "plastic", overrides={
        **overrides, "device": "cuda", "train.steps": 300, "train.learning_starts": 100,
        "train.replay_ratio": 0.5, "train.eval_episodes": 1, "train.eval_envs": 1,
        "train.eval_interval": 0, "reset.interval": 50, "train.checkpoint_interval": 200,
        "train.metrics_interval": 150})
    train(config, tmp_path, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["device"].startswith("cuda") and summary["updates"] == 100 and summary["resets"] == 2
    # the plasticity metrics ran on the GPU's tensors too (srank once compared with a CPU scalar)
    assert len((tmp_path / "plasticity.csv").read_text().splitlines()) == 3
    final = torch.load(tmp_path / "final_model.pt", map_location="cpu")
    tensors = [t for part in final.values() for t in part.values()]
    assert tensors and all(np.isfinite(t.float().numpy()).all() for t in tensors)
    if suite == "minatar":  # `plastic evaluate` of the run, on the GPU and on the CPU
        from plastic.train.evaluate_cli import evaluate_run

        on_gpu, on_cpu = (evaluate_run(tmp_path, episodes=2, seed=5, device=d) for d in ("cuda", "cpu"))
        assert len(on_gpu["returns"]) == 2 and len(on_cpu["returns"]) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_a_killed_cuda_run_resumes_and_finishes(tmp_path, cuda_graph):
    """On a GPU a killed run resumes from its checkpoint (Adam's state on the device, the graph
    recorded again for the loaded weights) and finishes with every update, Reset and log row once.
    Not compared with an uninterrupted run: the GPU's summation order differs between the two."""
    from plastic.cli import main
    from plastic.train.logger import read_csv
    from run_helpers import RESUME_ARGS, kill_after_first_checkpoint

    args = [*RESUME_ARGS, "--device", "cuda", "--set", f"train.cuda_graph={str(cuda_graph).lower()}"]
    run_dir = tmp_path / "run"
    kill_after_first_checkpoint(args, run_dir)
    assert main([*args, "--run-dir", str(run_dir)]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["device"].startswith("cuda")
    assert summary["updates"] == 700 and summary["resets"] == 2
    assert [row["step"] for row in read_csv(run_dir / "train.csv")] == list(range(100, 901, 100))
    assert [row["step"] for row in read_csv(run_dir / "plasticity.csv")] == [700]
    assert len(summary["provenance"]) == 2  # the start and the resume


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_synthetic_experiment_runs_on_cuda(tmp_path):
    """The paper's synthetic experiment on a GPU: SAM, Reset and the Hessian's power iteration
    (its random start drawn on the device) end with finite metrics, like the CPU run."""
    from plastic.synthetic.artifacts import read_csv
    from plastic.synthetic.data import load_digits_dataset
    from plastic.synthetic.experiment import SyntheticConfig, run_synthetic

    config = SyntheticConfig(task="label", method="plastic", dataset="digits", chunks=3,
                             iters_per_chunk=2, batch_size=16, seed=7, hessian=True,
                             hessian_iters=3, probe_size=32, device="cuda")
    summary = run_synthetic(config, tmp_path, dataset=load_digits_dataset())
    rows = read_csv(tmp_path / "metrics.csv")
    assert len(rows) == 3 and not summary["skipped"]
    assert all(np.isfinite(float(r["hessian_top"])) for r in rows)
    assert all(0.0 <= float(r["active_backbone"]) <= 1.0 for r in rows)
    assert 0.0 <= summary["final_test_acc"] <= 1.0
