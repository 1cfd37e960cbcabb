"""Layers PLASTIC adds to an agent: CReLU, LayerNorm over channels, and factorised noisy linear."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class CReLU(nn.Module):
    """Concatenated ReLU (Shang et al., 2016): ``cat([relu(x), relu(-x)], dim)``; doubles ``dim``.

    Every unit passes gradient for one sign of its input, so no unit is ever dead (paper Sec. 3.3).
    """

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(torch.cat((x, -x), dim=self.dim))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW tensor, at every spatial position.

    Works for contiguous and ``channels_last`` inputs; the output is ``channels_last``, which is
    what the fast convolution path wants next.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6, affine: bool = True) -> None:
        super().__init__()
        if num_channels <= 0:
            raise ValueError(f"LayerNorm2d: num_channels must be positive, got {num_channels}")
        self.num_channels = num_channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels)) if affine else None

    def reset_parameters(self) -> None:
        if self.weight is not None:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"LayerNorm2d({self.num_channels}) expects NCHW input with {self.num_channels} "
                f"channels, got shape {tuple(x.shape)}"
            )
        nhwc = x.permute(0, 2, 3, 1)
        out = F.layer_norm(nhwc, (self.num_channels,), self.weight, self.bias, self.eps)
        return out.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}, affine={self.weight is not None}"


# Up to this many rows, a noisy layer applies its noise in factorised form instead of building the
# noisy weight (acting is one row; building the weight costs more than a second thin matmul).
FACTORISED_MAX_ROWS = 8


def _scaled_noise(size: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    x = torch.randn(size, device=device, generator=generator)
    return x.sign().mul_(x.abs().sqrt_())


class _NoisyWeight(torch.autograd.Function):
    """μ + σ ⊙ E, whose backward is one pass over the weight: dμ = g, dσ = g ⊙ E. (Autograd's
    own ``addcmul`` backward first multiplies E by its scalar ``value`` 1: a second pass and a
    fresh weight-sized tensor, for each noisy layer in every backward.)

    With ``dtype`` (autocast's bf16 or fp16) the weight is written in that type straight away:
    the same values as building it in fp32 and casting, without the fp32 weight, and autocast
    does not cast it again at each pass that uses it. Its gradient comes back in fp32."""

    @staticmethod
    def forward(ctx: Any, mu: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor,
                dtype: torch.dtype | None) -> torch.Tensor:
        ctx.save_for_backward(noise)
        if dtype is None or dtype == mu.dtype:
            return torch.addcmul(mu, sigma, noise)
        return torch.addcmul(mu, sigma, noise, out=torch.empty(mu.shape, dtype=dtype, device=mu.device))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (noise,) = ctx.saved_tensors
        # a mixed-dtype product would promote to fp32 too, but through a slow generic loop
        grad = grad.to(noise.dtype)
        grad_sigma = grad * noise if ctx.needs_input_grad[1] else None
        return grad, grad_sigma, None, None


class NoisyLinear(nn.Module):
    """Linear layer with factorised Gaussian parameter noise (Fortunato et al., 2018).

    W = μ_W + σ_W ⊙ (f(ε_out) f(ε_in)ᵀ), b = μ_b + σ_b ⊙ f(ε_out), f(x) = sign(x)·√|x|.
    In eval mode the noise is off (W = μ_W). ``reset_noise()`` draws new ε.
    """

    def __init__(self, in_features: int, out_features: int, std_init: float = 0.5) -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(
                f"NoisyLinear: features must be positive, got ({in_features}, {out_features})"
            )
        self.in_features = in_features
        self.out_features = out_features
        self.std_init = std_init
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_sigma = nn.Parameter(torch.empty(out_features))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight_mu, -bound, bound)
        nn.init.uniform_(self.bias_mu, -bound, bound)
        nn.init.constant_(self.weight_sigma, self.std_init / math.sqrt(self.in_features))
        nn.init.constant_(self.bias_sigma, self.std_init / math.sqrt(self.out_features))
        self.reset_noise()

    @torch.no_grad()
    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        device = self.weight_mu.device
        self.eps_in.copy_(_scaled_noise(self.in_features, device, generator))
        self.eps_out.copy_(_scaled_noise(self.out_features, device, generator))

    def noisy_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """μ_W + σ_W ⊙ (f(ε_out) f(ε_in)ᵀ), in ``dtype`` if given (computed in fp32, then rounded)."""
        return _NoisyWeight.apply(self.weight_mu, self.weight_sigma,
                                  torch.outer(self.eps_out, self.eps_in), dtype)

    def noisy_bias(self) -> torch.Tensor:
        return torch.addcmul(self.bias_mu, self.bias_sigma, self.eps_out)

    def effective_parameters(self, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The (weight, bias) the layer applies now: noisy in training mode, the means in eval mode.

        Building the noisy weight costs a pass over μ_W and σ_W; a caller that applies the layer
        several times with the same noise (e.g. a learner's forward passes) builds it once here
        and uses ``F.linear(x, weight, bias)``. ``dtype``: the noisy weight's type, for passes
        under autocast to that type (the bias, and the means in eval mode, stay as they are).
        """
        if not self.training:
            return self.weight_mu, self.bias_mu
        return self.noisy_weight(dtype), self.noisy_bias()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.linear(x, self.weight_mu, self.bias_mu)
        if x.dim() == 2 and x.shape[0] <= FACTORISED_MAX_ROWS:
            # x·Wᵀ = x·μᵀ + ((x ⊙ f(ε_in))·σᵀ) ⊙ f(ε_out): reads μ and σ once, builds no weight.
            return torch.addcmul(F.linear(x, self.weight_mu, self.noisy_bias()),
                                 F.linear(x * self.eps_in, self.weight_sigma), self.eps_out)
        return F.linear(x, self.noisy_weight(), self.noisy_bias())

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, std_init={self.std_init}"


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged in the forward pass; its gradient multiplied by ``scale`` in the backward."""
    return x if scale == 1.0 else _ScaleGradient.apply(x, scale)
