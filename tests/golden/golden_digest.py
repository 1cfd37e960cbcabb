"""A compact, complete fingerprint of a tensor for golden fixtures (shared by generators and tests)."""

from __future__ import annotations

import numpy as np
import torch

SAMPLED_ELEMENTS = 24


def digest(x: torch.Tensor, name: str) -> torch.Tensor:
    """Sum, sum of |x|, two fixed random projections and fixed sampled elements of ``x`` (float64).

    The projections (Gaussian directions seeded by the tensor's name) change when any element
    changes, so comparing digests compares every element, at a fraction of a fixture's size.
    """
    flat = x.detach().double().flatten()
    rng = np.random.default_rng(_seed(name))
    directions = torch.from_numpy(rng.standard_normal((2, flat.numel())))
    picks = torch.from_numpy(rng.integers(0, flat.numel(), SAMPLED_ELEMENTS))
    return torch.cat([flat.sum()[None], flat.abs().sum()[None], directions @ flat, flat[picks]])


def digests_match(ours: torch.Tensor, golden: torch.Tensor, name: str, rtol: float) -> bool:
    """``digest(ours)`` equals ``golden`` to ``rtol``: sums and projections relative to Σ|x|,
    sampled elements relative to the largest of them."""
    mine = digest(ours, name)
    head_scale = golden[1].item() + 1e-30
    element_scale = golden[4:].abs().max().item() + 1e-30
    return bool(((mine[:4] - golden[:4]).abs() <= rtol * head_scale).all()
                and ((mine[4:] - golden[4:]).abs() <= rtol * element_scale).all())


def _seed(name: str) -> int:
    return int.from_bytes(name.encode().ljust(8, b"\0")[-8:], "little") ^ len(name)
