"""C51 projection against a brute-force per-sample, per-atom loop; augmentation against loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from plastic.agents.augment import intensity, random_shift
from plastic.agents.distributional import project_distribution


def brute_force_projection(probs, rewards, discounts, v_min, v_max, num_atoms):
    delta = (v_max - v_min) / (num_atoms - 1)
    out = np.zeros((len(rewards), num_atoms))
    for i in range(len(rewards)):
        for j in range(num_atoms):
            z = v_min + j * delta
            tz = min(max(rewards[i] + discounts[i] * z, v_min), v_max)
            b = (tz - v_min) / delta
            lower, upper = math.floor(b), math.ceil(b)
            if lower == upper:
                out[i, lower] += probs[i, j]
            else:
                out[i, lower] += probs[i, j] * (upper - b)
                out[i, upper] += probs[i, j] * (b - lower)
    return out


@pytest.mark.parametrize("num_atoms", [51, 5])
def test_projection_matches_brute_force(num_atoms):
    rng = np.random.default_rng(0)
    v_min, v_max = -10.0, 10.0
    delta = (v_max - v_min) / (num_atoms - 1)
    rewards = np.concatenate([
        rng.normal(0, 3, 20),
        [0.0, delta, 2 * delta, -3 * delta],  # with discount 1 or 0 these land exactly on atoms
        [25.0, -25.0, 9.9, -9.9],  # clamped at the support's ends
    ])
    discounts = np.concatenate([
        rng.choice([0.99**10, 0.99**3, 0.0], 20), [1.0, 0.0, 1.0, 0.0], [0.9, 0.9, 0.5, 0.0],
    ])
    probs = rng.dirichlet(np.ones(num_atoms), len(rewards))
    support = torch.linspace(v_min, v_max, num_atoms, dtype=torch.float64)
    got = project_distribution(torch.tensor(probs), torch.tensor(rewards),
                               torch.tensor(discounts), support).numpy()
    expected = brute_force_projection(probs, rewards, discounts, v_min, v_max, num_atoms)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-9)
    # a terminal transition is a point mass at clamp(r), split between its two neighbours
    terminal = discounts == 0
    means = got[terminal] @ support.numpy()
    np.testing.assert_allclose(means, np.clip(rewards[terminal], v_min, v_max), atol=1e-9)


def test_projection_float32_exact_atom():
    support = torch.linspace(-10, 10, 51)
    probs = torch.zeros(1, 51)
    probs[0, 30] = 1.0  # z = 2.0
    out = project_distribution(probs, torch.tensor([0.4]), torch.tensor([1.0]), support)
    assert out[0, 31].item() == pytest.approx(1.0, abs=1e-5)  # 2.4 is atom 31


def test_random_shift_matches_per_sample_crop():
    torch.manual_seed(0)
    x = torch.rand(6, 2, 9, 11)
    torch.manual_seed(1)
    shifted = random_shift(x, pad=2)
    torch.manual_seed(1)
    offsets = torch.randint(0, 5, (6, 2))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    for i in range(6):
        r, c = offsets[i].tolist()
        assert torch.equal(shifted[i], padded[i, :, r : r + 9, c : c + 11])
    assert not torch.equal(shifted, x)


def std_normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_intensity_range():
    """Factor 1 + 0.05·clamp(N(0, 1), −2, 2): Φ(−2) ≈ 2.28 % of samples exactly at each bound 0.9
    and 1.1, std 0.05·√Var[clamp(Z, −2, 2)] ≈ 0.0480 (the closed form below), P(factor ≤ 1) = ½."""
    torch.manual_seed(0)
    n = 100_000
    x = torch.ones(n, 1, 2, 2)
    y = intensity(x, 0.05)
    factors = y[:, 0, 0, 0].double()
    assert torch.all(y == y[:, :1, :1, :1])  # one factor per sample
    low, high = (1.0 + 0.05 * torch.tensor([-2.0, 2.0])).double().tolist()  # as float32 computes them
    assert factors.min().item() == low and factors.max().item() == high
    at_bound = std_normal_cdf(-2.0)
    tol = 4.5 * math.sqrt(at_bound * (1 - at_bound) / n)
    assert abs((factors == low).double().mean().item() - at_bound) < tol
    assert abs((factors == high).double().mean().item() - at_bound) < tol
    # Var[clamp(Z, −c, c)] = (2Φ(c) − 1) − 2c·φ(c) + 2c²·Φ(−c)
    c = 2.0
    pdf = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
    std = 0.05 * math.sqrt(2 * std_normal_cdf(c) - 1 - 2 * c * pdf + 2 * c * c * std_normal_cdf(-c))
    assert abs(std - 0.0480) < 1e-4
    assert abs(factors.mean().item() - 1.0) < 4.5 * std / math.sqrt(n)
    assert abs(factors.std().item() - std) < 0.0006  # ≈ 5 standard errors (0.05·√(3/n)/(2·0.96))
    assert abs((factors <= 0.95).double().mean().item() - std_normal_cdf(-1.0)) < 4.5 * math.sqrt(0.14 / n)
