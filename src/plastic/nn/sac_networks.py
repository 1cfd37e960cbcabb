"""DrQ's networks for SAC from pixels or state, as in PLASTIC's DeepMind Control experiments.

The layout follows the PLASTIC authors' DMC code (built on jaxrl's DrQ):

- ``encoder``: convs 32-64-128-256, 3×3, stride 2, output ⌈n/2⌉, each optionally followed by
  LayerNorm over channels, then ReLU (or, with CReLU in the encoder, convs to half the channels
  and CReLU back to the full count); flattened. Padding "symmetric" pads 1 on every side;
  "same" is flax's SAME, the authors': (total − total//2) after and total//2 before, i.e. 0
  before and 1 after for a 3×3 stride-2 conv on an even size. It belongs to the critic and is
  shared with the actor, which sees its features detached (policy gradients never reach it).
- ``projection``: Linear to 50 units, LayerNorm, tanh. The critic and the actor each have their
  own, on top of the shared encoder; it is part of the heads (reset, no SAM).
- MLPs 256-256 with ReLU or CReLU, optionally LayerNorm on each hidden layer's pre-activations.
  The authors' CReLU keeps 256 pre-activation units and doubles the features (512) that the next
  layer reads.

Weights are initialised as in the authors' code: orthogonal with gain √2 for convs and MLP layers
(output layers included; the actor's log-std layer takes ``log_std_gain``, the authors' 1.0),
truncated LeCun normal for the projection, zero biases. The layers
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
    """``nn.Linear`` with orthogonal weights (gain √2 unless given) and zero bias."""

    def __init__(self, in_features: int, out_features: int, gain: float = _ORTHOGONAL_GAIN) -> None:
        self.gain = gain  # before nn.Linear's __init__, which calls reset_parameters
        super().__init__(in_features, out_features)

    def reset_parameters(self) -> None:
        nn.init.orthogonal_(self.weight, self.gain)
        nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gain={self.gain:g}"


CONV_PADDINGS = ("symmetric", "same")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) of flax's/TF's SAME padding: output ⌈size/stride⌉, the odd pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class OrthogonalConv2d(nn.Conv2d):
    """3×3 stride-2 ``nn.Conv2d`` with orthogonal kernels (gain √2) and zero bias.

    ``padding`` "symmetric" pads 1 on every side; "same" pads as flax's SAME, which on an even size
    is 0 before and 1 after (one pad per call, sized to the input).
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "symmetric") -> None:
        if padding not in CONV_PADDINGS:
            raise ValueError(f"conv padding {padding!r} unknown; valid: {', '.join(CONV_PADDINGS)}")
        super().__init__(in_channels, out_channels, 3, stride=2, padding=1 if padding == "symmetric" else 0)
        self.same = padding == "same"

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # Through a contiguous buffer: orthogonal_ cannot fill a channels_last weight in place.
        kernel = torch.empty(self.weight.shape, dtype=self.weight.dtype, device=self.weight.device)
        self.weight.copy_(nn.init.orthogonal_(kernel, _ORTHOGONAL_GAIN))
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            top, bottom = same_padding(x.shape[-2], 3, 2)
            left, right = same_padding(x.shape[-1], 3, 2)
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, same_padding={self.same}"


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
    """3×3 stride-2 convs (output ⌈n/2⌉; ``padding`` "symmetric" or "same"), [LN], ReLU.

    With ``crelu`` each conv outputs half its channels and CReLU concatenates them back.
    Inputs are put in ``channels_last`` memory format, which makes CPU convolutions several
    times faster and is what cuDNN prefers too.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], layer_norm: bool,
                 crelu: bool = False, padding: str = "symmetric") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for out_channels in channels:
            width = crelu_input_width(out_channels, crelu, "encoder")
            layers.append(OrthogonalConv2d(in_channels, width, padding))
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
                     state_hidden: int, state_layers: int, crelu: bool = False,
                     conv_padding: str = "symmetric") -> nn.Module:
    """A conv encoder for (C, H, W) pixels, an MLP (or identity) encoder for (D,) state vectors."""
    if len(obs_shape) == 3:
        return ConvEncoder(obs_shape[0], channels, layer_norm, crelu, conv_padding)
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


def squashed_gaussian_sample(mean: torch.Tensor, log_std: torch.Tensor,
                             noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A reparameterised sample a = tanh(mean + std·ε), ε ~ N(0, I) (or ``noise``), and log π(a)."""
    if noise is None:
        noise = torch.randn_like(mean)
    u = mean + log_std.exp() * noise
    # log N(u; mean, std) from ε itself: (u − mean)/std would lose ε's digits when std ≪ |mean|.
    normal = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2.0 * math.pi)
    return torch.tanh(u), (normal - squash_log_det(u)).sum(-1)


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy on (detached) encoder features.

    ``log_std`` is squashed smoothly into [log_std_min, log_std_max] with a tanh, as in DrQ; its
    layer's orthogonal init has gain ``log_std_gain`` (the authors': 1.0).
    """

    def __init__(self, feature_dim: int, action_dim: int, *, latent_dim: int, hidden: int,
                 layers: int, crelu: bool, log_std_min: float, log_std_max: float,
                 layer_norm: bool = False, log_std_gain: float = _ORTHOGONAL_GAIN) -> None:
        super().__init__()
        if not log_std_min < log_std_max:
            raise ValueError(f"log_std_min ({log_std_min}) must be below log_std_max ({log_std_max})")
        self.projection = Projection(feature_dim, latent_dim)
        self.trunk, width = mlp_trunk(latent_dim, hidden, layers, crelu, layer_norm)
        self.mean = OrthogonalLinear(width, action_dim)
        self.log_std = OrthogonalLinear(width, action_dim, gain=log_std_gain)
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
