"""reset_: fresh values where asked, nothing else touched, target and optimizer state handled.
ResetSchedule: Resets after the updates the agents' own check fired them at, resumed or not."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from plastic import LayerNorm2d, NoisyLinear, reset_
from plastic.agents.rainbow import RainbowAgent
from plastic.configs import build_config
from plastic.reset import ResetSchedule


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 4, 3), LayerNorm2d(4), nn.ReLU(), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(4 * 6 * 6, 256), nn.ReLU(), NoisyLinear(256, 3))

    def forward(self, x):
        return self.head(self.encoder(x))


def trained_net() -> tuple[Net, Net, torch.optim.Adam]:
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(8, 1, 8, 8)).pow(2).mean().backward()
        opt.step()
    with torch.no_grad():  # far from any fresh init, so "changed" is unambiguous
        net.head[0].weight.fill_(5.0)
    return net, copy.deepcopy(net), opt


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_reset_head_online_target_and_optimizer():
    net, target, opt = trained_net()
    before, target_before = snapshot(net), snapshot(target)
    touched = reset_(net, ["head"], target=target, optimizer=opt)

    head_params = {n for n, _ in net.named_parameters() if n.startswith("head.")}
    assert set(touched) == head_params
    after = snapshot(net)
    for name in head_params:
        assert not torch.equal(after[name], before[name]), name
    for name in after:
        if name.startswith("encoder."):
            assert torch.equal(after[name], before[name]), name
            assert torch.equal(target.state_dict()[name], target_before[name]), name
    for name, value in target.state_dict().items():
        if name.startswith("head."):
            assert torch.equal(value, after[name]), name  # the same fresh values, buffers included

    for name, p in net.named_parameters():
        if name.startswith("head."):
            assert p not in opt.state, name
        else:
            assert opt.state[p]["step"] == 3, name
    assert all(p is q for p, q in zip(opt.param_groups[0]["params"], net.parameters()))

    weight = net.head[0].weight.detach().clone()
    opt.zero_grad()
    net(torch.randn(8, 1, 8, 8)).pow(2).mean().backward()
    opt.step()
    assert not torch.equal(net.head[0].weight, weight)  # still trained
    assert opt.state[net.head[0].weight]["step"] == 1


def test_reset_values_are_distributed_as_a_fresh_init():
    net, _, _ = trained_net()
    reset_(net, ["head.0"])
    weights = net.head[0].weight.detach().flatten().numpy()
    bound = 1 / (4 * 6 * 6) ** 0.5  # kaiming_uniform(a=√5) of nn.Linear: U(-1/√fan_in, 1/√fan_in)
    assert abs(weights).max() <= bound
    assert stats.kstest(weights, stats.uniform(loc=-bound, scale=2 * bound).cdf).pvalue > 1e-3


def test_shrink_and_perturb_blends_with_a_fresh_init():
    net, _, _ = trained_net()
    fresh_net = copy.deepcopy(net)
    old = net.encoder[0].weight.detach().clone()
    torch.manual_seed(7)
    reset_(fresh_net, ["encoder"])
    torch.manual_seed(7)
    reset_(net, ["encoder"], shrink=0.6)
    expected = 0.6 * old + 0.4 * fresh_net.encoder[0].weight
    assert torch.allclose(net.encoder[0].weight, expected, atol=1e-7)


def noisy_encoder() -> nn.Sequential:
    """An encoder with every kind of state: a conv, a LayerNorm, and a NoisyLinear (eps buffers)."""
    return nn.Sequential(nn.Conv2d(1, 4, 3), LayerNorm2d(4), nn.ReLU(), nn.Flatten(),
                         NoisyLinear(4 * 6 * 6, 5))


def test_shrink_and_perturb_of_online_and_target_by_hand():
    """θ ← 0.6·θ + 0.4·θ_fresh in the online network and θ′ ← 0.6·θ′ + 0.4·θ_fresh in the target
    (one fresh draw for both), LayerNorm toward its fresh (1, 0); buffers, the rest of the network
    and the other parameters' optimizer state untouched; the shrunk parameters' state cleared."""
    torch.manual_seed(0)
    net = nn.Module()
    net.encoder, net.head = noisy_encoder(), nn.Linear(5, 3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        net.head(net.encoder(torch.randn(8, 1, 8, 8))).pow(2).mean().backward()
        opt.step()
    target = copy.deepcopy(net)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # online, target and any fresh draw all far apart, LayerNorm included
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g))
        for p in target.parameters():
            p.add_(torch.randn(p.shape, generator=g))
        net.encoder[4].reset_noise(g)
        target.encoder[4].reset_noise(g)
    online_before, target_before = snapshot(net), snapshot(target)

    torch.manual_seed(11)
    touched = reset_(net, ["encoder"], target=target, optimizer=opt, shrink=0.6)
    torch.manual_seed(11)  # the same draws: a fresh module built as reset_parameters builds it
    fresh = {f"encoder.{k}": v for k, v in noisy_encoder().state_dict().items()}
    assert torch.equal(fresh["encoder.1.weight"], torch.ones(4)) and not fresh["encoder.1.bias"].any()

    encoder_params = [n for n, _ in net.named_parameters() if n.startswith("encoder.")]
    assert touched == encoder_params
    assert {n.rpartition(".")[0] for n in encoder_params} == {"encoder.0", "encoder.1", "encoder.4"}
    online, shrunk_target = snapshot(net), snapshot(target)
    for name in encoder_params:
        assert not torch.allclose(online_before[name], fresh[name], atol=1e-2), name
        assert not torch.allclose(online_before[name], target_before[name], atol=1e-2), name
        expected = 0.6 * online_before[name] + 0.4 * fresh[name]
        torch.testing.assert_close(online[name], expected, rtol=0, atol=1e-6, msg=name)
        expected = 0.6 * target_before[name] + 0.4 * fresh[name]
        torch.testing.assert_close(shrunk_target[name], expected, rtol=0, atol=1e-6, msg=name)
    for name in ["encoder.1.weight", "encoder.1.bias"]:  # LayerNorm: toward (1, 0)
        init = 1.0 if name.endswith("weight") else 0.0
        torch.testing.assert_close(online[name], 0.6 * online_before[name] + 0.4 * init, msg=name)
        torch.testing.assert_close(shrunk_target[name], 0.6 * target_before[name] + 0.4 * init, msg=name)
    for name in online:  # buffers (the noise) and the head: exactly as they were, in both networks
        if name not in encoder_params:
            assert torch.equal(online[name], online_before[name]), name
            assert torch.equal(shrunk_target[name], target_before[name]), name
    assert not torch.equal(online["encoder.4.eps_in"], fresh["encoder.4.eps_in"])  # the check has teeth

    for name, p in net.named_parameters():  # the same tensors, their state cleared where shrunk
        if name in encoder_params:
            assert p not in opt.state, name
        else:
            assert opt.state[p]["step"] == 2, name
    assert all(p is q for p, q in zip(opt.param_groups[0]["params"], net.parameters()))


def dagger_agent(layer_norm_toward: str) -> RainbowAgent:
    """PLASTIC† (LayerNorm, Reset) at replay ratio 4, where a Reset also shrinks the encoder; its
    online and target networks moved apart, and away from any init."""
    torch.manual_seed(0)
    config = build_config("minatar", "breakout", "plastic-dagger", overrides={
        "agent.batch_size": 8, "train.replay_ratio": 4.0, "reset.layer_norm_toward": layer_norm_toward})
    agent = RainbowAgent(config, (4, 10, 10), 3, torch.device("cpu"))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in [*agent.online.parameters(), *agent.target.parameters()]:
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    return agent


def test_agent_shrink_pulls_layer_norm_toward_a_fresh_init_or_the_online_network():
    """Fidelity row 7. ``init``: LayerNorm shrunk toward (1, 0) in both networks; ``online`` (the
    authors'): the online LayerNorm kept, the target's → 0.6·target + 0.4·online. Either way the
    other encoder parameters are shrunk toward one fresh draw, the same in both modes."""
    after: dict[str, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = {}
    for toward in ["init", "online"]:
        agent = dagger_agent(toward)
        schedule = ResetSchedule.from_config(agent.config)
        assert schedule.encoder_shrink == 0.6 and agent.config.reset.reset_target
        norms = {f"{n}.{p}" for n, m in agent.online.encoder.named_modules()
                 if isinstance(m, (nn.LayerNorm, LayerNorm2d)) for p in ["weight", "bias"]}
        assert norms == {"1.weight", "1.bias"}
        online_before, target_before = snapshot(agent.online.encoder), snapshot(agent.target.encoder)
        torch.manual_seed(5)
        agent.reset(encoder_shrink=schedule.encoder_shrink)
        online, target = snapshot(agent.online.encoder), snapshot(agent.target.encoder)
        after[toward] = online, target
        for name in norms:
            o, t = online_before[name], target_before[name]
            assert (o - t).abs().min() > 1e-3 and (o - float(name.endswith("weight"))).abs().min() > 1e-3
            if toward == "init":
                init = torch.full_like(o, float(name.endswith("weight")))
                expected_online, expected_target = 0.6 * o + 0.4 * init, 0.6 * t + 0.4 * init
            else:
                expected_online, expected_target = o, 0.6 * t + 0.4 * o
            torch.testing.assert_close(online[name], expected_online, rtol=0, atol=1e-6, msg=name)
            torch.testing.assert_close(target[name], expected_target, rtol=0, atol=1e-6, msg=name)
        for name in online.keys() - norms:  # the conv: one fresh draw θ_fresh for both networks
            fresh_online = (online[name] - 0.6 * online_before[name]) / 0.4
            fresh_target = (target[name] - 0.6 * target_before[name]) / 0.4
            torch.testing.assert_close(fresh_online, fresh_target, rtol=0, atol=1e-5, msg=name)
            assert (online[name] - online_before[name]).abs().min() > 0, name
    for name in after["init"][0].keys() - norms:
        assert torch.equal(after["init"][0][name], after["online"][0][name]), name
        assert torch.equal(after["init"][1][name], after["online"][1][name]), name


def test_whole_module_reset_and_duplicates_counted_once():
    net, _, _ = trained_net()
    touched = reset_(net, ["", "head"])
    assert sorted(touched) == sorted(n for n, _ in net.named_parameters())


@pytest.mark.parametrize(
    ("names", "kwargs", "message"),
    [
        (["nosuch"], {}, "unknown submodule 'nosuch'.*valid names: 'encoder'"),
        ([], {}, "names is empty"),
        (["head"], {"shrink": 1.0}, r"shrink must be in \[0, 1\)"),
    ],
)
def test_bad_arguments(names, kwargs, message):
    net, _, _ = trained_net()
    with pytest.raises(ValueError, match=message):
        reset_(net, names, **kwargs)


def test_target_of_another_shape_is_refused():
    net, _, _ = trained_net()
    other = nn.Module()
    other.head = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="structure"):
        reset_(net, ["head"], target=other)


def test_module_without_reset_parameters_is_refused():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.s = nn.Parameter(torch.ones(1))

    holder = nn.Sequential(Scale())
    with pytest.raises(ValueError, match="no reset_parameters"):
        reset_(holder, ["0"])


# ------------------------------------------------------------------------------ ResetSchedule
def loop_updates(steps: int, learning_starts: int, replay_ratio: float):
    """The loop's update accounting: (agent step, update count) after each update."""
    budget, updates = 0.0, 0
    for step in range(learning_starts + 1, steps + 1):
        budget += replay_ratio
        while budget >= 1.0:
            budget -= 1.0
            updates += 1
            yield step, updates


def brute_force_reset_updates(steps: int, learning_starts: int, replay_ratio: float,
                              interval: int) -> list[int]:
    """The Reset counted down from ``interval`` updates and restarted after each: the update
    counts after which a Reset happens."""
    countdown, resets = interval, []
    for _, updates in loop_updates(steps, learning_starts, replay_ratio):
        countdown -= 1
        if countdown == 0:
            resets.append(updates)
            countdown = interval
    return resets


def schedule_reset_updates(schedule: ResetSchedule, steps: int, learning_starts: int,
                           replay_ratio: float, resume_at: set[int] = frozenset()) -> list[int]:
    """The same accounting asking ``schedule``; at each step in ``resume_at`` the schedule is
    rebuilt, as a run resumed from a checkpoint taken there does (only the counts survive)."""
    resets, rebuilt_at = [], set()
    for step, updates in loop_updates(steps, learning_starts, replay_ratio):
        if step in resume_at and step not in rebuilt_at:
            schedule = ResetSchedule(schedule.interval, schedule.encoder_shrink)
            rebuilt_at.add(step)
        if schedule.due(updates):
            resets.append(updates)
    return resets


@pytest.mark.parametrize(("replay_ratio", "interval"), [(1.0, 7), (0.25, 3), (2.0, 5), (0.3, 4),
                                                        (4.0, 40), (1.0, 1)])
def test_schedule_resets_after_the_same_updates_as_a_countdown(replay_ratio, interval):
    config = build_config("minatar", "breakout", "drq+reset", overrides={
        "train.replay_ratio": replay_ratio, "reset.interval": interval})
    schedule = ResetSchedule.from_config(config)
    expected = brute_force_reset_updates(400, 50, replay_ratio, interval)
    assert len(expected) >= 3
    assert schedule_reset_updates(schedule, 400, 50, replay_ratio) == expected
    # A checkpoint on the very update of a Reset, and others anywhere: the same Resets.
    first_reset_step = 50 + int(np.ceil(expected[0] / replay_ratio))
    resumed = schedule_reset_updates(schedule, 400, 50, replay_ratio,
                                     resume_at={first_reset_step + 1, 77, 301})
    assert resumed == expected


@pytest.mark.parametrize(("interval", "total"), [(3, 10), (3, 9), (1, 5), (25_000, 250_000)])
def test_schedule_in_agent_steps_resets_after_every_interval_th_step_but_the_last(interval, total):
    schedule = ResetSchedule(interval, unit="agent_steps")
    countdown, expected = interval, []  # a countdown over the loop's steps, as their loop counts
    for step in range(1, total + 1):
        countdown -= 1
        if countdown == 0:
            countdown = interval
            if step != total:
                expected.append(step)
    assert [step for step in range(0, total + 1) if schedule.due_after_step(step, total)] == expected
    assert not any(schedule.due(updates) for updates in range(0, 4 * total))  # never per update
    assert not any(ResetSchedule(interval).due_after_step(step, total) for step in range(total + 1))


def test_the_dmc_profiles_count_the_reset_interval_as_their_code_does():
    authors = build_config("dmc", "walker-walk", "plastic", overrides={"train.replay_ratio": 2})
    intent = build_config("dmc", "walker-walk", "plastic", overrides={"train.replay_ratio": 2,
                                                                      "fidelity": "intent"})
    # the authors' script: every 25k loop steps at any replay ratio; the paper's 25k agent steps
    # as updates otherwise
    assert (authors.reset.interval_unit, authors.reset.interval) == ("agent_steps", 25_000)
    assert (intent.reset.interval_unit, intent.reset.interval) == ("updates", 50_000)
    assert ResetSchedule.from_config(authors).unit == "agent_steps"
    with pytest.raises(ValueError, match="reset.interval_unit: unknown value 'episodes'"):
        build_config("dmc", "walker-walk", "plastic", overrides={"reset.interval_unit": "episodes"})


def test_schedule_from_config_off_interval_and_encoder_shrink():
    off = ResetSchedule.from_config(build_config("minatar", "breakout", "drq"))
    assert off.interval is None and not any(off.due(n) for n in range(0, 100_001, 40_000))
    on = ResetSchedule.from_config(build_config("minatar", "breakout", "drq+reset", overrides={
        "reset.interval": 10}))
    assert [n for n in range(0, 31) if on.due(n)] == [10, 20, 30]  # never before the first update
    for ratio, shrink in [(2.0, None), (3.99, None), (4.0, 0.6), (8.0, 0.6)]:
        config = build_config("minatar", "breakout", "plastic-dagger", overrides={
            "train.replay_ratio": ratio})
        assert ResetSchedule.from_config(config).encoder_shrink == shrink, ratio
    with pytest.raises(ValueError, match="reset.interval must be >= 1"):
        ResetSchedule(0)
    with pytest.raises(ValueError, match="reset.interval_unit: unknown value 'steps'"):
        ResetSchedule(10, unit="steps")
