"""How much does a trained Rainbow agent's score depend on its noisy layers? Noise off against draws.

The evaluation protocol plays the acting network with its noisy layers off (their means μ; the
authors' code does the same), while training acted with a fresh noise draw at every update. This
plays a finished run's final model both ways: the protocol (``plastic evaluate``: 100 games, the
final evaluation's start states) and ``--draws`` fixed draws of the acting network's noise, each
for ``--games`` games at ε = the run's evaluation ε, every draw on the same start states (the
first games of the protocol's environments); and prints the size of the noise relative to the
means, ‖σ‖/‖μ‖, per noisy layer of the acting network.

    python benchmarks/noisy_draws.py /work/evidence-runs/minatar-all/space_invaders/*/seed1

One line per run: ``protocol``, each draw's mean score and the draws' mean, then ‖σ‖/‖μ‖.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plastic.nn.layers import NoisyLinear
from plastic.runtime import configure_threads
from plastic.train.evaluate import play_games
from plastic.train.evaluate_cli import _env_maker, evaluate_run, load_trained_agent


def noise_ratios(network: torch.nn.Module) -> dict[str, float]:
    """‖σ‖/‖μ‖ of each noisy layer's weights."""
    return {name: float(module.weight_sigma.detach().norm() / module.weight_mu.detach().norm())
            for name, module in network.named_modules() if isinstance(module, NoisyLinear)}


def noisy_policy(agent: Any, network: torch.nn.Module,
                 generator: torch.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """Draws new noise into ``network``'s noisy layers and returns the ε-greedy policy that acts
    with them (the agent's evaluation ε)."""
    for module in network.modules():
        if isinstance(module, NoisyLinear):
            module.reset_noise(generator)

    def act(obs: np.ndarray) -> np.ndarray:
        actions = agent.q_values(obs, network=network, noise=True).argmax(dim=1).cpu().numpy()
        explore = agent.rng.random(len(actions)) < agent.config.agent.eval_epsilon
        actions[explore] = agent.rng.integers(agent.num_actions, size=int(explore.sum()))
        return actions

    return act


def noisy_draw_scores(run_dir: Path, draws: int, games: int,
                      seed: int) -> tuple[list[float], dict[str, float]]:
    """Mean score of ``games`` games for each of ``draws`` fixed noise draws of the acting network,
    all on the start states of the protocol's first ``games`` games."""
    trained = load_trained_agent(run_dir, "cpu")
    agent, config = trained.agent, trained.config
    network = agent.target if config.agent.act_with_target else agent.online
    summary = run_dir / "summary.json"
    index = int(json.loads(summary.read_text()).get("evaluation_index", 0)) if summary.is_file() else 0
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(draws):
        returns = play_games(noisy_policy(agent, network, generator), _env_maker(config, None, 0, []), games,
                             config.train.eval_envs, seed=config.seed, index=index).returns
        scores.append(float(np.mean(returns)))
    return scores, noise_ratios(network)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories (with final_model.pt)")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--games", type=int, default=20, help="games per draw")
    parser.add_argument("--seed", type=int, default=1234, help="seeds the noise draws")
    args = parser.parse_args(argv)
    configure_threads(1)
    for run in args.runs:
        protocol = evaluate_run(run)["score"]
        scores, ratios = noisy_draw_scores(run, args.draws, args.games, args.seed)
        name = "/".join(run.resolve().parts[-3:])
        print(f"{name:30s} protocol {protocol:7.2f} | draws " + " ".join(f"{s:6.2f}" for s in scores)
              + f" | mean {np.mean(scores):6.2f} | ‖σ‖/‖μ‖ "
              + " ".join(f"{layer} {ratio:.2f}" for layer, ratio in ratios.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
