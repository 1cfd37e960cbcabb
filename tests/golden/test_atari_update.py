"""Our Atari update, in the "authors" fidelity profile, reproduces the authors' own code.

The fixtures (``fixtures/atari_update/*.pt``) were made by ``generate_atari_update.py``, which
runs their training loop on fixed weights, batches and forced random draws. Here our agent starts
from the same weights, gets the same batches and draws (and, at a Reset, the same fresh weights)
and must match what their code computed after every update: the loss, the clean gradient norm, the
priorities written to the replay, and every online and target parameter, final gradient and Adam
moment. Flipping any one knob of the profile back to its "intent" value must break the match.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from golden_digest import digests_match
from torch import nn

import plastic.reset
from plastic.agents.rainbow import RainbowAgent, UpdateRandomness
from plastic.configs.presets import build_config
from plastic.nn.layers import LayerNorm2d
from plastic.replay.buffer import Batch
from plastic.reset import ResetSchedule

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "atari_update"
PRESETS = {"drq": "drq", "plastic_rr2": "plastic", "plastic_dagger_rr4": "plastic-dagger"}
# Float order differs (their NCHW convs and grid_sample shift against our channels_last convs and
# integer crop, their LayerNorm against ours): values agree to this relative tolerance.
RTOL = 1e-5
# Adam divides each gradient by its own running norm, so the relative float noise of a tiny
# gradient element becomes absolute noise in its parameter; moments and parameters get this.
PARAM_RTOL = 1e-4


def load(case: str) -> dict[str, Any]:
    return torch.load(FIXTURES / f"{case}.pt", weights_only=False)


def build_agent(golden: dict[str, Any], overrides: dict[str, Any]) -> RainbowAgent:
    config = build_config("atari", "pong", PRESETS[golden["case"]], overrides={
        "network.hidden": golden["hidden"], "agent.batch_size": golden["batch_size"],
        "train.replay_ratio": golden["replay_ratio"], "device": "cpu",
        "agent.max_grad_norm": golden["max_grad_norm"],
        **({"reset.interval": golden["reset_interval"]} if golden["reset_interval"] > 0 else {}),
        **overrides})
    agent = RainbowAgent(config, tuple(golden["obs_shape"]), golden["num_actions"], torch.device("cpu"))
    with torch.no_grad():
        for network in (agent.online, agent.target):
            for name, p in network.named_parameters():
                p.copy_(golden["initial"][name])
    return agent


def batch_of(data: dict[str, torch.Tensor]) -> Batch:
    discount = (0.99 ** 10) * (1.0 - data["done"].numpy())
    return Batch(obs=data["obs"].numpy(), action=data["action"].numpy(),
                 reward=data["return"].numpy(), discount=discount.astype(np.float32),
                 next_obs=data["next_obs"].numpy(), weight=data["weight"].numpy(),
                 index=np.arange(len(data["action"])))


def randomness_of(draws: dict[str, dict[str, torch.Tensor]]) -> UpdateRandomness:
    def one(d: dict[str, torch.Tensor]) -> UpdateRandomness:
        def noise(net: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
            layers = {k.split(".", 1)[1].rsplit(".", 1)[0] for k in d if k.startswith(net + ".")}
            return {f"head.{layer}": (d[f"{net}.{layer}.in"], d[f"{net}.{layer}.out"]) for layer in layers}

        return UpdateRandomness(online_noise=noise("online"), target_noise=noise("target"),
                                obs_shift=d["obs.shift"], next_obs_shift=d["next_obs.shift"],
                                obs_intensity=d["obs.intensity"],
                                next_obs_intensity=d["next_obs.intensity"])

    randomness = one(draws["clean"])
    if "perturbed" in draws:
        randomness.perturbed = one(draws["perturbed"])
        randomness.perturbed_noise = randomness.perturbed.online_noise  # for sam.resample_noise
    return randomness


def feed_fresh_weights(monkeypatch: pytest.MonkeyPatch, fresh: list[dict[str, torch.Tensor]]) -> None:
    """Our Reset draws the fresh weights their Reset drew (LayerNorms keep their own init: theirs
    have no reset_parameters, so the recorded values are not a fresh initialisation)."""
    resets = {"count": -1}
    real_fresh_copy = plastic.reset._fresh_copy

    def fresh_copy(sub: nn.Module, name: str) -> nn.Module:
        module = real_fresh_copy(sub, name)
        if name == "head":  # our Reset does the head first, then the encoder
            resets["count"] += 1
        values = fresh[resets["count"]]
        with torch.no_grad():
            for child_name, child in module.named_modules():
                if isinstance(child, (nn.LayerNorm, LayerNorm2d)):
                    continue
                for key, p in child.named_parameters(recurse=False):
                    p.copy_(values[f"{name}.{child_name}.{key}"])
        return module

    monkeypatch.setattr(plastic.reset, "_fresh_copy", fresh_copy)


def mismatches(agent: RainbowAgent, stats: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """What differs between our agent after an update and their recorded update."""
    wrong = []
    if not np.isclose(stats["loss"].item(), expected["loss"], rtol=RTOL, atol=0):
        wrong.append(f"loss {stats['loss'].item()} != {expected['loss']}")
    clean_norm = stats.get("grad_norm_clean", stats["grad_norm"]).item()
    if not np.isclose(clean_norm, expected["grad_norm"], rtol=RTOL, atol=0):
        wrong.append(f"clean gradient norm {clean_norm} != {expected['grad_norm']}")
    written = expected["kl_perturbed"] if expected["kl_perturbed"] is not None else expected["kl_clean"]
    if not torch.allclose(stats["priority"], written, rtol=RTOL, atol=0):
        wrong.append("priorities")
    params = dict(agent.online.named_parameters())
    targets = dict(agent.target.named_parameters())
    state = agent.optimizer.state
    for key, golden in expected.items():
        if "/" not in key:
            continue
        kind, name = key.split("/", 1)
        tensor = _tensor(kind, params[name], targets[name], state)
        rtol = RTOL if kind == "grad" else PARAM_RTOL
        if tensor is None or not digests_match(tensor, golden, name, rtol):
            wrong.append(key)
    our_moments = {k for k in expected if k.startswith("exp_avg")}
    if any(p in state and "exp_avg" in state[p] and f"exp_avg/{n}" not in our_moments
           for n, p in params.items()):
        wrong.append("optimizer state their rebuild cleared")
    steps = sorted({int(s["step"]) for s in state.values() if "step" in s})
    if steps != expected["adam_steps"]:
        wrong.append(f"Adam step counts {steps} != {expected['adam_steps']}")
    return wrong


def _tensor(kind: str, param: torch.Tensor, target: torch.Tensor,
            state: dict[Any, dict[str, Any]]) -> torch.Tensor | None:
    if kind == "online":
        return param
    if kind == "target":
        return target
    if kind == "grad":
        return param.grad
    return state.get(param, {}).get(kind)  # an Adam moment


def replay(golden: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
           overrides: dict[str, Any]) -> list[list[str]]:
    """Run our agent through the fixture's updates, each followed by a Reset where the run's
    schedule has one (as the training loop does); the mismatches after each."""
    feed_fresh_weights(monkeypatch, golden["fresh"])
    agent = build_agent(golden, overrides)
    schedule = ResetSchedule.from_config(agent.config)
    results = []
    for data, draws, expected in zip(golden["batches"], golden["draws"], golden["updates"]):
        stats = agent.update(batch_of(data), randomness_of(copy.deepcopy(draws)))
        if schedule.due(agent.updates):
            agent.reset(encoder_shrink=schedule.encoder_shrink)
        results.append(mismatches(agent, stats, expected))
    return results


@pytest.mark.parametrize("case", sorted(PRESETS))
def test_authors_profile_reproduces_their_update(case, monkeypatch):
    golden = load(case)
    results = replay(golden, monkeypatch, {})
    assert results == [[] for _ in golden["updates"]]
    if golden["fresh"]:  # a Reset happened inside the recorded updates
        assert len(golden["updates"]) > golden["reset_interval"]


# Each knob of the authors profile that the case exercises, flipped back to its intent value.
KNOB_FLIPS = [
    ("drq", {"network.dueling_grad_scale": 1.0}),
    ("drq", {"fidelity": "intent"}),
    ("plastic_rr2", {"sam.exclusion": "clean"}),
    ("plastic_rr2", {"sam.preclip": False}),
    ("plastic_rr2", {"sam.perturbed_pass": "reuse"}),
    ("plastic_rr2", {"sam.all_after_reset": False}),
    ("plastic_rr2", {"reset.optimizer_state": "touched"}),
    ("plastic_rr2", {"network.dueling_grad_scale": 1.0}),
    ("plastic_dagger_rr4", {"reset.layer_norm_toward": "init"}),
    ("plastic_dagger_rr4", {"network.dueling_grad_scale": 1.0}),
]  # (at replay ratio 4 the shrunk encoder's state is cleared too: optimizer_state changes nothing)


@pytest.mark.parametrize(("case", "flip"), KNOB_FLIPS, ids=lambda x: str(x))
def test_flipping_a_knob_breaks_the_match(case, flip, monkeypatch):
    golden = load(case)
    results = replay(golden, monkeypatch, flip)
    assert any(results), f"{flip} still reproduces their update: the knob is not tested"


def importance_exponents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anneal: str) -> list[float]:
    """The exponents our loop passes to the replay in a run with their 50 updates: 300 agent
    steps, learning from step 100 at replay ratio 0.25."""
    from plastic.replay.buffer import ReplayBuffer
    from plastic.train.loop import train

    betas: list[float] = []
    real_sample = ReplayBuffer.sample

    def spy(self, batch_size, beta=0.4, **kwargs):
        betas.append(beta)
        return real_sample(self, batch_size, beta, **kwargs)

    monkeypatch.setattr(ReplayBuffer, "sample", spy)
    config = build_config("minatar", "breakout", "drq", overrides={
        "train.steps": 300, "train.learning_starts": 100, "train.replay_ratio": 0.25,
        "train.eval_episodes": 1, "train.eval_envs": 1, "train.checkpoint_interval": 0,
        "train.metrics_interval": 0, "agent.batch_size": 4, "network.hidden": 16,
        "agent.importance_anneal": anneal})
    train(config, tmp_path / anneal, progress=False)
    monkeypatch.undo()
    return betas


def test_importance_exponent_follows_their_schedule_over_updates(tmp_path, monkeypatch):
    golden = torch.load(FIXTURES / "importance_exponent.pt", weights_only=False)
    theirs = golden["betas"][: golden["updates"]]
    ours = importance_exponents(tmp_path, monkeypatch, "updates")
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert importance_exponents(tmp_path, monkeypatch, "agent_steps") != pytest.approx(theirs, abs=1e-6)
