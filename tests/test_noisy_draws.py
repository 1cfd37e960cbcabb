"""benchmarks/noisy_draws.py on a real (tiny) trained run: a draw plays the acting network with
fresh noise (with σ = 0 exactly the protocol's games, on its start states; with σ large, other
actions at each draw), and ‖σ‖/‖μ‖ by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from plastic.cli import main as plastic_main
from plastic.nn.layers import NoisyLinear
from plastic.train.evaluate import play_games
from plastic.train.evaluate_cli import _env_maker, load_trained_agent
from script_module import load_script

_MODULE = load_script("benchmarks/noisy_draws.py")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("noisy") / "run"
    assert plastic_main(["train", "minatar", "--game", "breakout", "--preset", "drq", "--steps", "400",
                         "--run-dir", str(run), "--no-progress", "--set", "train.learning_starts=100",
                         "--set", "train.eval_episodes=4", "--set", "train.eval_envs=2"]) == 0
    return run


def test_the_noise_ratio_of_each_noisy_layer_by_hand():
    layer = NoisyLinear(3, 2)
    with torch.no_grad():
        layer.weight_mu.copy_(torch.tensor([[3.0, 0.0, 0.0], [0.0, 4.0, 0.0]]))
        layer.weight_sigma.fill_(0.5)
    network = torch.nn.Sequential(torch.nn.Linear(2, 3), layer)
    assert _MODULE.noise_ratios(network) == {"1": pytest.approx(np.sqrt(6 * 0.25) / 5.0)}


def scale_sigma(run_dir: Path, factor: float) -> Path:
    model = torch.load(run_dir / "final_model.pt", weights_only=True)
    for network in model.values():
        for key in network:
            if key.endswith("_sigma"):
                network[key].mul_(factor)
    torch.save(model, run_dir / "final_model.pt")
    return run_dir


def test_a_draw_acts_with_fresh_noise(run_dir):
    trained = load_trained_agent(scale_sigma(run_dir, 100.0), "cpu")
    env = _env_maker(trained.config, None, 0, [])(0)
    obs = np.random.default_rng(0).integers(0, 2, size=(64, *env.observation_space.shape), dtype=np.uint8)
    env.close()
    network, generator = trained.agent.target, torch.Generator().manual_seed(0)
    draws = [_MODULE.noisy_policy(trained.agent, network, generator)(obs) for _ in range(2)]
    noise_off = trained.agent.act(obs, evaluate=True)
    assert (draws[0] != draws[1]).any() and (draws[0] != noise_off).any()


def test_with_no_noise_a_draw_plays_the_protocols_games(run_dir):
    scores, ratios = _MODULE.noisy_draw_scores(scale_sigma(run_dir, 0.0), draws=2, games=4, seed=0)
    trained = load_trained_agent(run_dir, "cpu")  # a fresh agent: its ε-greedy draws start over
    index = json.loads((run_dir / "summary.json").read_text()).get("evaluation_index", 0)
    expected = [np.mean(play_games(lambda obs: trained.agent.act(obs, evaluate=True),
                                   _env_maker(trained.config, None, 0, []), 4, trained.config.train.eval_envs,
                                   seed=trained.config.seed, index=index).returns) for _ in range(2)]
    assert scores == pytest.approx(expected) and set(ratios.values()) == {0.0}
