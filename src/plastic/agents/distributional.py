"""Categorical (C51) projection of the Bellman target onto a fixed support (Bellemare et al., 2017)."""

from __future__ import annotations

import torch


def project_distribution(
    probs: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor, support: torch.Tensor
) -> torch.Tensor:
    """Project the distribution of ``reward + discount·Z`` onto ``support``, for a whole batch.

    Args:
        probs: (B, N) probabilities of Z on ``support``.
        reward: (B,) n-step returns.
        discount: (B,) γⁿ, or 0 where the window hit a terminal.
        support: (N,) evenly spaced atoms z_1 < ... < z_N.

    Each atom's mass moves to Tz = clamp(r + d·z, z_1, z_N) and is split between the two
    neighbouring atoms in proportion to closeness (all of it to one atom when Tz lands on it).
    """
    num_atoms = support.numel()
    v_min, v_max = support[0], support[-1]
    delta = (v_max - v_min) / (num_atoms - 1)
    tz = (reward[:, None] + discount[:, None] * support[None, :]).clamp(v_min, v_max)
    b = ((tz - v_min) / delta).clamp(0, num_atoms - 1)
    lower, upper = b.floor().long(), b.ceil().long()
    # When b is an integer, lower == upper: give it all the mass through the lower term.
    lower_weight = probs * (upper.to(probs.dtype) - b + (lower == upper).to(probs.dtype))
    upper_weight = probs * (b - lower.to(probs.dtype))
    projected = torch.zeros_like(probs)
    projected.scatter_add_(1, lower, lower_weight)
    projected.scatter_add_(1, upper, upper_weight)
    return projected
