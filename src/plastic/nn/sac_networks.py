"""DrQ's networks for SAC from pixels or state, as in PLASTIC's DeepMind Control experiments.

The layout follows the PLASTIC authors' DMC code (built on jaxrl's DrQ):

- ``encoder``: convs 32-64-128-256, 3×3, stride 2, SAME-sized padding, each optionally followed by
  LayerNorm over channels, then ReLU (or, with CReLU in the encoder, convs to half the channels
  and CReLU back to the full count); flattened. It belongs to the critic and is shared with the
  actor, which sees its features detached (policy gradients never reach it).
- ``projection``: Linear to 50 units, LayerNorm, tanh. The critic and the actor each have their
  own, on top of the shared encoder; it is part of the heads (reset, no SAM).
- MLPs 256-256 with ReLU or CReLU, optionally LayerNorm on each hidden layer's pre-activations.
  The authors' CReLU keeps 256 pre-activation units and doubles the features (512) that the next
  layer reads.

Weights are initialised as in the authors' code: orthogonal with gain √2 for convs and MLP layers
(output layers included), truncated LeCun normal for the projection, zero biases. The layers
re-initialise themselves through ``reset_parameters``, so ``plastic.reset_`` reproduces the init.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from plastic.nn.networks import crelu_input_width, norm_and_activation

_ORTHOGONAL_GAIN = math.sqrt(2.0)
_TRUNCATED_NORMAL_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


class OrthogonalLinear(nn.Linear):
    """``nn.Linear`` with orthogonal weights (gain √2) and zero bias."""

    def reset_parameters(self) -> None:
        nn.init.orthogonal_(self.weight, _ORTHOGONAL_GAIN)
        nn.init.zeros_(self.bias)


class OrthogonalConv2d(nn.Conv2d):
    """``nn.Conv2d`` with orthogonal kernels (gain √2) and zero bias."""

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # Through a contiguous buffer: orthogonal_ cannot fill a channels_last weight in place.
        kernel = torch.empty(self.weight.shape, dtype=self.weight.dtype, device=self.weight.device)
        self.weight.copy_(nn.init.orthogonal_(kernel, _ORTHOGONAL_GAIN))
        nn.init.zeros_(self.bias)


class LecunLinear(nn.Linear):
    """``nn.Linear`` with truncated LeCun-normal weights (flax's default) and zero bias."""

    def reset_parameters(self) -> None:
        std = math.sqrt(1.0 / self.in_features) / _TRUNCATED_NORMAL_STD
        nn.init.trunc_normal_(self.weight, std=std, a=-2.0 * std, b=2.0 * std)
        nn.init.zeros_(self.bias)


def parse_channels(text: str) -> tuple[int, ...]:
    """``"32-64-128-256"`` -> ``(32, 64, 128, 256)``."""
    try:
        channels = tuple(int(part) for part in text.split("-"))
    except ValueError:
        channels = ()
    if not channels or any(c <= 0 for c in channels):
        raise ValueError(
            f"encoder channels must be positive integers joined by '-', e.g. '32-64-128-256'; got {text!r}"
        )
    return channels


class ConvEncoder(nn.Module):
    """3×3 stride-2 convs with padding 1 (output ⌈n/2⌉, the size of SAME padding), [LN], ReLU.

    With ``crelu`` each conv outputs half its channels and CReLU concatenates them back.
    Inputs are put in ``channels_last`` memory format, which makes CPU convolutions several
    times faster and is what cuDNN prefers too.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], layer_norm: bool,
                 crelu: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for out_channels in channels:
            width = crelu_input_width(out_channels, crelu, "encoder")
            layers.append(OrthogonalConv2d(in_channels, width, 3, stride=2, padding=1))
            layers += norm_and_activation(width, layer_norm=layer_norm, crelu=crelu, spatial=True)
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(x.contiguous(memory_format=torch.channels_last))
        return x.flatten(1)


class StateEncoder(nn.Module):
    """For proprioceptive state: ``layers`` × (Linear, [LayerNorm], ReLU); identity if 0.

    With ``crelu``, as the conv encoder: Linear to hidden/2 units, CReLU back to ``hidden``.
    """

    def __init__(self, in_features: int, hidden: int, layers: int, layer_norm: bool,
                 crelu: bool = False) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        for _ in range(layers):
            width = crelu_input_width(hidden, crelu, "encoder")
            modules.append(OrthogonalLinear(in_features, width))
            modules += norm_and_activation(width, layer_norm=layer_norm, crelu=crelu, spatial=False)
            in_features = hidden
        self.layers = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def make_sac_encoder(obs_shape: tuple[int, ...], *, channels: tuple[int, ...], layer_norm: bool,
                     state_hidden: int, state_layers: int, crelu: bool = False) -> nn.Module:
    """A conv encoder for (C, H, W) pixels, an MLP (or identity) encoder for (D,) state vectors."""
    if len(obs_shape) == 3:
        return ConvEncoder(obs_shape[0], channels, layer_norm, crelu)
    if len(obs_shape) == 1:
        return StateEncoder(obs_shape[0], state_hidden, state_layers, layer_norm, crelu)
    raise ValueError(
        f"observation shape {tuple(obs_shape)} not supported; valid: (C, H, W) pixels or (D,) state"
    )


def output_size(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(module(torch.zeros(1, *input_shape)).shape[1])


class Projection(nn.Sequential):
    """Linear to ``latent_dim``, LayerNorm, tanh: DrQ's bottleneck on the encoder features."""

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__(LecunLinear(in_features, latent_dim), nn.LayerNorm(latent_dim, eps=1e-6),
                         nn.Tanh())


def mlp_trunk(in_features: int, hidden: int, layers: int, crelu: bool,
              layer_norm: bool = False) -> tuple[nn.Sequential, int]:
    """``layers`` × (Linear(hidden), [LayerNorm], ReLU or CReLU); the trunk and its output width."""
    modules: list[nn.Module] = []
    for _ in range(layers):
        modules.append(OrthogonalLinear(in_features, hidden))
        modules += norm_and_activation(hidden, layer_norm=layer_norm, crelu=crelu, spatial=False)
        in_features = 2 * hidden if crelu else hidden
    return nn.Sequential(*modules), in_features


# ------------------------------------------------------------------------------------ policy
def squash_log_det(u: torch.Tensor) -> torch.Tensor:
    """log(1 − tanh(u)²) = 2·(log 2 − u − softplus(−2u)), stable for large |u|."""
    return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))


def squashed_gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log π(tanh(u)) for u ~ N(mean, exp(log_std)²) per dimension, summed over the last axis."""
    normal = -0.5 * ((u - mean) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2.0 * math.pi)
    return (normal - squash_log_det(u)).sum(-1)


def squashed_gaussian_sample(mean: torch.Tensor, log_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A reparameterised sample a = tanh(mean + std·ε), ε ~ N(0, I), and log π(a)."""
    u = mean + log_std.exp() * torch.randn_like(mean)
    return torch.tanh(u), squashed_gaussian_log_prob(u, mean, log_std)


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy on (detached) encoder features.

    ``log_std`` is squashed smoothly into [log_std_min, log_std_max] with a tanh, as in DrQ.
    """

    def __init__(self, feature_dim: int, action_dim: int, *, latent_dim: int, hidden: int,
                 layers: int, crelu: bool, log_std_min: float, log_std_max: float,
                 layer_norm: bool = False) -> None:
        super().__init__()
        if not log_std_min < log_std_max:
            raise ValueError(f"log_std_min ({log_std_min}) must be below log_std_max ({log_std_max})")
        self.projection = Projection(feature_dim, latent_dim)
        self.trunk, width = mlp_trunk(latent_dim, hidden, layers, crelu, layer_norm)
        self.mean = OrthogonalLinear(width, action_dim)
        self.log_std = OrthogonalLinear(width, action_dim)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_std) of the Gaussian before the tanh."""
        h = self.trunk(self.projection(features))
        span = self.log_std_max - self.log_std_min
        log_std = self.log_std_min + 0.5 * span * (torch.tanh(self.log_std(h)) + 1.0)
        return self.mean(h), log_std


# ------------------------------------------------------------------------------------ critic
class QFunction(nn.Module):
    """Q(z, a): an MLP trunk on the concatenated latent and action, then one output."""

    def __init__(self, in_features: int, hidden: int, layers: int, crelu: bool,
                 layer_norm: bool = False) -> None:
        super().__init__()
        self.trunk, width = mlp_trunk(in_features, hidden, layers, crelu, layer_norm)
        self.out = OrthogonalLinear(width, 1)

    def forward(self, latent_action: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(latent_action)).squeeze(-1)


class CriticHead(nn.Module):
    """Projection + twin Q functions, on encoder features and actions."""

    def __init__(self, feature_dim: int, action_dim: int, *, latent_dim: int, hidden: int,
                 layers: int, crelu: bool, layer_norm: bool = False) -> None:
        super().__init__()
        self.projection = Projection(feature_dim, latent_dim)
        self.q1 = QFunction(latent_dim + action_dim, hidden, layers, crelu, layer_norm)
        self.q2 = QFunction(latent_dim + action_dim, hidden, layers, crelu, layer_norm)

    def forward(self, features: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.projection(features), action], dim=-1)
        return self.q1(x), self.q2(x)


class Critic(nn.Module):
    """``encoder`` + ``head``: the names SAM scopes and Reset targets."""

    def __init__(self, encoder: nn.Module, head: CriticHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.encoder(obs), action)


class CriticQ1Probe(nn.Module):
    """Q1's path on encoder features at the policy's mean action, for plasticity metrics.

    The actor is held outside the module tree, so hooks on this probe see only critic layers.
    """

    def __init__(self, head: CriticHead, actor: Actor) -> None:
        super().__init__()
        self.projection = head.projection  # shared with the critic, not copies
        self.q1 = head.q1
        self._actor = [actor]  # a list: not registered as a submodule

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        action = torch.tanh(self._actor[0](features)[0])
        return self.q1(torch.cat([self.projection(features), action], dim=-1))
