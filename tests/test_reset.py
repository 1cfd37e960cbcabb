"""reset_: fresh values where asked, nothing else touched, target and optimizer state handled."""

from __future__ import annotations

import copy

import pytest
import torch
from scipy import stats
from torch import nn

from plastic import LayerNorm2d, NoisyLinear, reset_


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
