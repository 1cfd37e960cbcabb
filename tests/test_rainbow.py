"""The Rainbow learner: Reset at the exact update counts in both networks, SAM on the encoder only."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from plastic.agents import rainbow
from plastic.agents.rainbow import RainbowAgent
from plastic.configs import build_config
from plastic.nn.layers import CReLU, LayerNorm2d
from plastic.replay.buffer import ReplayBuffer
from plastic.reset import ResetSchedule

OBS_SHAPE = (4, 10, 10)


def filled_replay(seed: int = 0) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    replay = ReplayBuffer(500, OBS_SHAPE, n_step=3, prioritized=True, seed=seed)
    for i in range(300):
        replay.add(rng.integers(0, 2, OBS_SHAPE, dtype=np.uint8), int(rng.integers(3)),
                   float(rng.random() < 0.2), terminal=False, episode_end=i % 60 == 59)
    return replay


def make_agent(preset: str, **overrides) -> RainbowAgent:
    torch.manual_seed(0)
    config = build_config("minatar", "breakout", preset, overrides={"agent.batch_size": 8, **overrides})
    return RainbowAgent(config, OBS_SHAPE, 3, torch.device("cpu"))


def update_and_reset(agent: RainbowAgent, batch, randomness=None) -> bool:
    """An update, then a Reset where the run's schedule has one, as the training loop does."""
    agent.update(batch, randomness)
    schedule = ResetSchedule.from_config(agent.config)
    if not schedule.due(agent.updates):
        return False
    agent.reset(encoder_shrink=schedule.encoder_shrink)
    return True


def head_state(net) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.head.state_dict().items()}


def count(module: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


@pytest.mark.parametrize(
    ("preset", "ln_scope", "crelu_scope", "placed"),  # placed: LN in encoder, head; CReLU in encoder, head
    [
        ("drq+ln+crelu", "encoder", "head", (1, 0, 0, 1)),  # the paper's (the defaults)
        ("drq+ln+crelu", "head", "encoder", (0, 1, 1, 0)),
        ("drq+ln+crelu", "all", "all", (1, 1, 1, 1)),
        ("drq", "all", "all", (0, 0, 0, 0)),  # the scopes only matter when the switches are on
    ],
)
def test_layer_norm_and_crelu_placement(preset, ln_scope, crelu_scope, placed):
    """MinAtar: one 3x3 conv to 16 channels (4x10x10 -> 16x8x8 = 1024 features); a dueling noisy
    head of 128 hidden units for 3 actions x 51 atoms."""
    agent = make_agent(preset, **{"network.layer_norm_scope": ln_scope, "network.crelu_scope": crelu_scope})
    encoder, head = agent.online.encoder, agent.online.head
    ln_encoder, ln_head, crelu_encoder, crelu_head = placed
    assert (count(encoder, LayerNorm2d), count(encoder, nn.LayerNorm)) == (ln_encoder, 0)
    assert (count(head, nn.LayerNorm), count(head, LayerNorm2d)) == (2 * ln_head, 0)  # both streams
    assert (count(encoder, CReLU), count(encoder, nn.ReLU)) == (crelu_encoder, 1 - crelu_encoder)
    assert (count(head, CReLU), count(head, nn.ReLU)) == (2 * crelu_head, 2 - 2 * crelu_head)

    channels = 8 if crelu_encoder else 16  # CReLU concatenates 8 channels back to 16
    conv_and_norm = 4 * channels * 9 + channels + 2 * channels * ln_encoder
    assert sum(p.numel() for p in encoder.parameters()) == conv_and_norm
    width = 64 if crelu_head else 128

    def noisy(i: int, o: int) -> int:
        return 2 * (i * o + o)  # μ and σ of weight and bias

    def stream(out: int) -> int:
        return noisy(1024, width) + 2 * width * ln_head + noisy(128, out)

    assert sum(p.numel() for p in head.parameters()) == stream(3 * 51) + stream(51)
    x = torch.rand(2, *OBS_SHAPE)
    assert agent.online.features(x).shape == (2, 1024)
    assert agent.online(x).shape == (2, 3, 51)
    assert torch.allclose(agent.online(x, head.linear_parameters()), agent.online(x), atol=1e-6)


def test_odd_head_width_with_crelu_is_refused():
    with pytest.raises(ValueError, match="CReLU in the head needs even widths .* got 127"):
        make_agent("drq+crelu", **{"network.hidden": 127})
    make_agent("drq+crelu", **{"network.hidden": 127, "network.crelu_scope": "encoder"})  # head: ReLU


def test_head_reset_reinitialises_head_layer_norm_and_sam_leaves_it_out():
    agent = make_agent("drq+ln+sam+reset", **{"network.layer_norm_scope": "all", "reset.interval": 2})
    norms = {n: m for n, m in agent.online.named_modules() if isinstance(m, (nn.LayerNorm, LayerNorm2d))}
    assert sorted(norms) == ["encoder.1", "head.advantage.1", "head.value.1"]  # inside `head`
    sam = {p for group in agent.optimizer.param_groups if group["sam"] for p in group["params"]}
    assert all(p in sam for p in norms["encoder.1"].parameters())
    assert not any(p in sam for n in ("head.advantage.1", "head.value.1") for p in norms[n].parameters())

    def fresh(module: nn.Module) -> bool:
        return torch.equal(module.weight, torch.ones_like(module.weight)) \
            and torch.equal(module.bias, torch.zeros_like(module.bias))

    replay = filled_replay()
    assert not update_and_reset(agent, replay.sample(8))
    assert not any(fresh(m) for m in norms.values())  # every LayerNorm learned
    assert update_and_reset(agent, replay.sample(8))
    target = dict(agent.target.named_modules())
    for name, module in norms.items():
        assert fresh(module) == fresh(target[name]) == name.startswith("head."), name


@pytest.mark.parametrize("optimizer_state", ["touched", "all"])
def test_head_reset_at_exact_update_counts_in_both_networks(optimizer_state):
    agent = make_agent("drq+reset", **{"reset.interval": 3, "reset.optimizer_state": optimizer_state})
    replay = filled_replay()
    resets_at = []
    for _ in range(7):
        if update_and_reset(agent, replay.sample(8)):
            resets_at.append(agent.updates)
            online, target = head_state(agent.online), head_state(agent.target)
            assert all(torch.equal(online[k], target[k]) for k in online)  # same fresh values
            for p in agent.online.head.parameters():
                assert p not in agent.optimizer.state
            for p in agent.online.encoder.parameters():  # "all": rebuilt as the authors' code does
                if optimizer_state == "touched":
                    assert agent.optimizer.state[p]["step"] == agent.updates
                else:
                    assert p not in agent.optimizer.state
        else:
            online, target = head_state(agent.online), head_state(agent.target)
            assert not all(torch.equal(online[k], target[k]) for k in online)
    assert resets_at == [3, 6]


def test_shrink_and_perturb_of_the_encoder_only_at_high_replay_ratio(monkeypatch):
    calls = []
    real = rainbow.reset_

    def spy(module, names, **kwargs):
        calls.append((list(names), kwargs.get("shrink", 0.0), kwargs.get("target") is not None))
        return real(module, names, **kwargs)

    monkeypatch.setattr(rainbow, "reset_", spy)
    replay = filled_replay()
    for ratio, expected in [(2.0, [(["head"], 0.0, True)]),
                            (4.0, [(["head"], 0.0, True), (["encoder"], 0.6, True)])]:
        calls.clear()
        agent = make_agent("plastic-dagger", **{"reset.interval": 2, "train.replay_ratio": ratio})
        for _ in range(2):
            update_and_reset(agent, replay.sample(8))
        assert calls == expected


def test_update_never_resets_and_reset_names_what_it_changed():
    agent = make_agent("plastic-dagger", **{"reset.interval": 1})
    replay = filled_replay()
    agent.update(replay.sample(8))
    assert "reset" not in agent.update(replay.sample(8))
    assert all(p in agent.optimizer.state for p in agent.online.parameters())  # no Reset cleared any
    head = [f"online.head.{n}" for n, _ in agent.online.head.named_parameters()]
    encoder = [f"online.encoder.{n}" for n, _ in agent.online.encoder.named_parameters()]
    assert agent.reset() == head
    before = {n: p.detach().clone() for n, p in agent.online.encoder.named_parameters()}
    assert agent.reset(encoder_shrink=0.6) == head + encoder
    assert all(not torch.equal(p, before[n]) for n, p in agent.online.encoder.named_parameters()
               if not n.startswith("1."))  # LayerNorm (encoder.1): shrunk toward the init it holds


@pytest.mark.parametrize("fidelity", ["intent", "authors"])
def test_sam_perturbs_only_encoder_parameters(fidelity):
    """The paper's SAM moves the encoder alone by ρ; the authors' code moves the head too, and ρ
    is the length of the whole move."""
    agent = make_agent("plastic", fidelity=fidelity)
    replay = filled_replay()
    before = {n: p.detach().clone() for n, p in agent.online.named_parameters()}
    seen = []

    def record(module, inputs):
        if torch.is_grad_enabled():
            seen.append({n: p.detach().clone() for n, p in module.named_parameters()})

    handle = agent.online.register_forward_pre_hook(record)
    agent.update(replay.sample(8))
    handle.remove()
    assert len(seen) == 2  # the clean pass and the perturbed pass
    clean, perturbed = seen
    assert all(torch.equal(clean[n], before[n]) for n in before)
    for name in before:
        if name.startswith("encoder.") or fidelity == "authors":
            assert not torch.equal(perturbed[name], before[name]), name
        else:
            assert torch.equal(perturbed[name], before[name]), name
    moved = (perturbed[n] - before[n] for n in before
             if n.startswith("encoder.") or fidelity == "authors")
    norm = torch.sqrt(sum((d * d).sum() for d in moved))
    assert norm.item() == pytest.approx(agent.config.sam.rho, rel=1e-4)


def test_updates_learn_a_fixed_target():
    """One-step terminal transitions: the target is a point mass at r, so the loss can reach 0."""
    agent = make_agent("drq", **{"agent.prioritized": False, "network.noisy": False, "agent.lr": 3e-3})
    rng = np.random.default_rng(1)
    replay = ReplayBuffer(100, OBS_SHAPE, n_step=1, seed=0)
    for _ in range(50):
        replay.add(rng.integers(0, 2, OBS_SHAPE, dtype=np.uint8), int(rng.integers(3)),
                   float(rng.integers(2)), terminal=True, episode_end=True)
    batch = replay.sample(8)
    assert np.all(batch.discount == 0)
    first = agent.update(batch)["loss"].item()
    for _ in range(100):
        last = agent.update(batch)["loss"].item()
    assert last < 0.25 * first


def test_acting_is_greedy_in_evaluation_and_uses_target():
    agent = make_agent("drq", **{"agent.eval_epsilon": 0.0})
    replay = filled_replay()
    for _ in range(3):
        agent.update(replay.sample(8))
    with torch.no_grad():  # move the online network far from the EMA target
        for p in agent.online.head.parameters():
            p.add_(torch.randn_like(p))
    obs = np.random.default_rng(0).integers(0, 2, (64, *OBS_SHAPE), dtype=np.uint8)

    def greedy(network) -> np.ndarray:  # noise off: the means of the noisy layers
        network.eval()
        with torch.no_grad():
            logits = network(torch.as_tensor(obs).float())
        network.train()
        return (torch.softmax(logits, -1) @ agent.support).argmax(1).numpy()

    by_target, by_online = greedy(agent.target), greedy(agent.online)
    assert (by_target != by_online).any()  # the check below can tell the networks apart
    assert np.array_equal(agent.act(obs, evaluate=True), by_target)
    assert agent.target.training and agent.online.training  # act() restores the mode
    agent.config.agent.act_with_target = False
    assert np.array_equal(agent.act(obs, evaluate=True), by_online)


def test_a_checkpoint_after_a_reset_keeps_sams_whole_network_scope():
    """The authors profile widens SAM to the whole network at a Reset; a checkpoint taken after
    it restores that scope (and the rebuilt optimizer state), so the next update is the same."""
    agent = make_agent("plastic", **{"reset.interval": 2})
    assert agent.config.sam.all_after_reset and agent.config.reset.optimizer_state == "all"
    replay = filled_replay()
    assert [agent.optimizer.param_groups[i]["sam"] for i in (0, 1)] == [True, False]
    for _ in range(2):
        update_and_reset(agent, replay.sample(8))
    assert [agent.optimizer.param_groups[i]["sam"] for i in (0, 1)] == [True, True]
    state = copy.deepcopy(agent.state_dict())
    resumed = make_agent("plastic", **{"reset.interval": 2})
    resumed.load_state_dict(state)
    assert [resumed.optimizer.param_groups[i]["sam"] for i in (0, 1)] == [True, True]
    assert {id(p) for p in resumed._sam_recomputed} == {id(p) for p in resumed.online.parameters()}
    batch = replay.sample(8)
    draws = agent.draw_randomness(8)
    assert not update_and_reset(agent, batch, copy.deepcopy(draws))
    assert not update_and_reset(resumed, batch, copy.deepcopy(draws))
    for (name, a), b in zip(agent.online.named_parameters(), resumed.online.parameters()):
        assert torch.equal(a, b), name
