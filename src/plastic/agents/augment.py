"""DrQ / SPR image augmentation: random shift (replicate-pad, random crop) and intensity."""

from __future__ import annotations

import torch


def shift_images(x: torch.Tensor, offsets: torch.Tensor, pad: int) -> torch.Tensor:
    """Crop each replicate-padded image of (B, C, H, W) at its offset (row, column) in [0, 2·pad].

    Replicate padding then cropping is the same as reading the image at clamped coordinates, so
    this is one gather from the unpadded images (any dtype: uint8 frames stay uint8), exact and
    with no Python loop over the batch.
    """
    b, c, h, w = x.shape
    rows = (offsets[:, :1] - pad + torch.arange(h, device=x.device)).clamp_(0, h - 1)  # (B, H)
    cols = (offsets[:, 1:] - pad + torch.arange(w, device=x.device)).clamp_(0, w - 1)  # (B, W)
    flat = (rows.unsqueeze(2) * w + cols.unsqueeze(1)).view(b, 1, h * w).expand(b, c, h * w)
    return x.reshape(b, c, h * w).gather(2, flat).view(b, c, h, w)


def draw_shifts(batch_size: int, pad: int, device: torch.device | str) -> torch.Tensor:
    return torch.randint(0, 2 * pad + 1, (batch_size, 2), device=device)


def draw_intensities(batch_size: int, device: torch.device | str) -> torch.Tensor:
    return torch.randn(batch_size, device=device).clamp_(-2.0, 2.0)


def random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift each image of (B, C, H, W) by an integer offset in [-pad, pad] per axis (DrQ)."""
    if pad == 0:
        return x
    return shift_images(x, draw_shifts(x.shape[0], pad, x.device), pad)


def intensity(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Multiply each sample by 1 + scale·clamp(N(0, 1), −2, 2) (SPR's intensity augmentation)."""
    if scale == 0:
        return x
    noise = draw_intensities(x.shape[0], x.device).view(-1, *([1] * (x.dim() - 1)))
    return x * (1.0 + scale * noise)


def augment(x: torch.Tensor, pad: int, intensity_scale: float) -> torch.Tensor:
    return intensity(random_shift(x, pad), intensity_scale)
