"""Plasticity metrics against hand-computed values and brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from plastic import CReLU, metrics


def hand_net() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2), CReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
        net[2].bias.copy_(torch.tensor([0.0, 0.0]))
    return net


X = torch.tensor([[1.0, 2.0], [-1.0, 3.0]])
# layer 1 pre-activations: [1, 2, -3], [-1, 3, -2] -> relu [1,2,0], [0,3,0]: 3 of 6 positive
# layer 3 (CReLU of [3, 0], [3, 0]) = [3, 0, 0, 0] twice: 2 of 8 positive


def test_active_units_hand_values_and_hooks_removed():
    net = hand_net()
    assert metrics.active_units(net, X) == {"1": 0.5, "3": 0.25}
    assert all(not m._forward_hooks for m in net.modules())
    assert metrics.active_units(net, X, layers=["0"]) == {"0": 3 / 6}


def test_active_units_of_crelu_layers_on_their_inputs_by_hand():
    """The training loop's mode: a CReLU layer counts its positive pre-activations, which its
    output (relu(x), relu(−x)) would halve; a ReLU layer is measured on its output as before."""
    net = hand_net()
    # layer 3's input [3, 0], [3, 0]: 2 of 4 positive (its output: 2 of 8, 0.25)
    assert metrics.active_units(net, X, crelu_inputs=True) == {"1": 0.5, "3": 0.5}
    assert all(not m._forward_hooks for m in net.modules())
    crelu = nn.Sequential(CReLU())
    x = torch.tensor([[1.0, -2.0, 0.0, 3.0]])  # output [1, 0, 0, 3, 0, 2, 0, 0]: 3 of 8
    assert metrics.active_units(crelu, x, crelu_inputs=True) == {"0": 2 / 4}  # zero is not active
    assert metrics.active_units(crelu, x) == {"0": 3 / 8}


def test_dormant_units_hand_values():
    net = hand_net()
    # layer "1": E|h| per unit = [0.5, 2.5, 0]; mean 1.0 -> normalised [0.5, 2.5, 0]
    assert metrics.dormant_units(net, X, tau=0.0, layers=["1"]) == {"1": pytest.approx(1 / 3)}
    assert metrics.dormant_units(net, X, tau=0.5, layers=["1"]) == {"1": pytest.approx(2 / 3)}
    # conv layer: a unit is a channel, averaged over positions
    conv = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU())
    with torch.no_grad():
        conv[0].weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv[0].bias.zero_()
    image = torch.ones(3, 1, 4, 4)
    assert metrics.dormant_units(conv, image, tau=0.1) == {"1": 0.5}


def test_metric_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown layer 'nope'.*valid names"):
        metrics.active_units(hand_net(), X, layers=["nope"])
    with pytest.raises(ValueError, match="no nn.ReLU or CReLU"):
        metrics.active_units(nn.Linear(2, 2), X)
    with pytest.raises(ValueError, match="tau must be non-negative"):
        metrics.dormant_units(hand_net(), X, tau=-1)


def test_hessian_top_eigenvalue_of_quadratic():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
    eigenvalues = torch.tensor([7.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.2, 0.1], dtype=torch.float64)
    A = q @ torch.diag(eigenvalues) @ q.T
    w = torch.randn(8, dtype=torch.float64, requires_grad=True)
    top = metrics.hessian_top_eigenvalue(lambda: 0.5 * w @ A @ w, [w], generator=g)
    assert abs(top - float(np.linalg.eigvalsh(A.numpy()).max())) < 1e-3


def test_hessian_top_eigenvalue_of_a_network_matches_full_hessian():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x, y = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 1, dtype=torch.float64)
    params = list(net.parameters())
    shapes = [p.shape for p in params]
    flat = torch.cat([p.detach().flatten() for p in params])

    def loss_of_flat(v):
        chunks, i = [], 0
        for s in shapes:
            n = math.prod(s)
            chunks.append(v[i : i + n].view(s))
            i += n
        w1, b1, w2, b2 = chunks
        return ((torch.tanh(x @ w1.T + b1) @ w2.T + b2 - y) ** 2).mean()

    hessian = torch.autograd.functional.hessian(loss_of_flat, flat)
    eig = torch.linalg.eigvalsh(hessian)
    expected = eig.max().item()
    top = metrics.hessian_top_eigenvalue(
        lambda: ((net(x) - y) ** 2).mean(), params, iters=500,
        generator=torch.Generator().manual_seed(2),
    )
    assert abs(top - expected) < 1e-3 * max(1.0, abs(expected))


def test_hessian_top_eigenvalue_when_negative_curvature_dominates():
    A = torch.diag(torch.tensor([2.0, -5.0, 0.5, -1.0], dtype=torch.float64))
    w = torch.ones(4, dtype=torch.float64, requires_grad=True)
    top = metrics.hessian_top_eigenvalue(
        lambda: 0.5 * w @ A @ w, [w], iters=1000, generator=torch.Generator().manual_seed(0)
    )
    assert abs(top - 2.0) < 1e-3


def features_with_singular_values(values: list[float], rows: int = 20) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    n = len(values)
    u, _ = torch.linalg.qr(torch.randn(rows, n, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return u @ torch.diag(torch.tensor(values, dtype=torch.float64)) @ v.T


def test_srank_and_effective_rank_hand_values():
    feats = features_with_singular_values([50.0, 30.0, 15.0, 4.0, 0.5, 0.5])
    # cumulative share: .5, .8, .95, .99, .995, 1.0 -> (1-δ)=0.99 first reached at k=4
    assert metrics.srank(feats, delta=0.01) == 4
    assert metrics.srank(feats, delta=0.1) == 3
    p = np.array([50, 30, 15, 4, 0.5, 0.5]) / 100
    assert metrics.effective_rank(feats) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)
    assert metrics.effective_rank(features_with_singular_values([2.0] * 5)) == pytest.approx(5.0)
    with pytest.raises(ValueError, match=r"\(batch, dim\) matrix"):
        metrics.srank(torch.ones(3))


def test_weight_and_grad_norm_hand_values():
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 0.0]]))
        layer.bias.fill_(4.0)
    assert metrics.weight_norm(layer) == pytest.approx(5.0)
    assert metrics.grad_norm(layer) == 0.0
    layer(torch.tensor([[1.0, 2.0]])).sum().backward()  # grads: w=[1, 2], b=1
    assert metrics.grad_norm(layer.parameters()) == pytest.approx(math.sqrt(6.0))
