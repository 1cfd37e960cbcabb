"""DrQ / SPR image augmentation: random shift (replicate-pad, random crop) and intensity."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift each image of (B, C, H, W) by an integer offset in [-pad, pad] per axis.

    Replicate padding then a crop at a random offset per sample, as DrQ; done with two gathers,
    so it is exact (no interpolation) and has no Python loop over the batch.
    """
    if pad == 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), device=x.device)
    rows = (offsets[:, 0:1] + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (offsets[:, 1:2] + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    padded = padded.gather(2, rows.expand(b, c, h, w + 2 * pad))
    return padded.gather(3, cols.expand(b, c, h, w))


def intensity(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Multiply each sample by 1 + scale·clamp(N(0, 1), −2, 2) (SPR's intensity augmentation)."""
    if scale == 0:
        return x
    noise = torch.randn(x.shape[0], 1, 1, 1, device=x.device).clamp_(-2.0, 2.0)
    return x * (1.0 + scale * noise)


def augment(x: torch.Tensor, pad: int, intensity_scale: float) -> torch.Tensor:
    return intensity(random_shift(x, pad), intensity_scale)
