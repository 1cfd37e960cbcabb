"""Encoders and heads built from flags: the paper's components are switches, not new classes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from plastic.nn.layers import CReLU, LayerNorm2d, NoisyLinear, scale_gradient


def crelu_input_width(width: int, crelu: bool, what: str) -> int:
    """Units a layer outputs so that its activation outputs ``width``: CReLU doubles ``width``/2."""
    if not crelu:
        return width
    if width % 2:
        raise ValueError(f"CReLU in the {what} needs even widths (width/2 units, concatenated back "
                         f"to width), got {width}")
    return width // 2


def norm_and_activation(width: int, *, layer_norm: bool, crelu: bool, spatial: bool) -> list[nn.Module]:
    """[LayerNorm over the ``width`` features (channels if ``spatial``)], then ReLU or CReLU."""
    modules: list[nn.Module] = []
    if layer_norm:
        modules.append(LayerNorm2d(width) if spatial else nn.LayerNorm(width, eps=1e-6))
    modules.append(CReLU(dim=1 if spatial else -1) if crelu else nn.ReLU())
    return modules


def _conv_block(in_ch: int, out_ch: int, kernel: int, stride: int, layer_norm: bool,
                crelu: bool) -> list[nn.Module]:
    """Conv → [LayerNorm2d] → ReLU, or with CReLU: a conv to out_ch/2 channels, CReLU back to out_ch."""
    width = crelu_input_width(out_ch, crelu, "encoder")
    return [nn.Conv2d(in_ch, width, kernel, stride),
            *norm_and_activation(width, layer_norm=layer_norm, crelu=crelu, spatial=True)]


def nature_encoder(in_channels: int, layer_norm: bool = False, crelu: bool = False) -> nn.Sequential:
    """Nature-DQN CNN (32-64-64); for 84×84 inputs it outputs 3136 features."""
    return nn.Sequential(
        *_conv_block(in_channels, 32, 8, 4, layer_norm, crelu),
        *_conv_block(32, 64, 4, 2, layer_norm, crelu),
        *_conv_block(64, 64, 3, 1, layer_norm, crelu),
        nn.Flatten(),
    )


def minatar_encoder(in_channels: int, layer_norm: bool = False, crelu: bool = False) -> nn.Sequential:
    """MinAtar's DQN encoder (Young & Tian, 2019): one 3×3 conv with 16 channels."""
    return nn.Sequential(*_conv_block(in_channels, 16, 3, 1, layer_norm, crelu), nn.Flatten())


ENCODERS = {"nature": nature_encoder, "minatar": minatar_encoder}


def make_encoder(name: str, in_channels: int, layer_norm: bool = False,
                 crelu: bool = False) -> nn.Sequential:
    """An encoder by name; ``layer_norm``/``crelu`` put LayerNorm2d/CReLU after every conv."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; valid encoders: {', '.join(ENCODERS)}")
    return ENCODERS[name](in_channels, layer_norm, crelu)


def encoder_output_size(encoder: nn.Module, input_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(encoder(torch.zeros(1, *input_shape)).shape[1])


def mlp(in_features: int, hidden: int, out_features: int, *, noisy: bool, crelu: bool,
        layer_norm: bool = False, noisy_std: float = 0.5) -> nn.Sequential:
    """Linear → [LayerNorm] → ReLU (or CReLU on hidden/2 units, concatenated back to hidden) → Linear."""
    def linear(i: int, o: int) -> nn.Module:
        return NoisyLinear(i, o, noisy_std) if noisy else nn.Linear(i, o)

    width = crelu_input_width(hidden, crelu, "head")
    return nn.Sequential(linear(in_features, width),
                         *norm_and_activation(width, layer_norm=layer_norm, crelu=crelu, spatial=False),
                         linear(hidden, out_features))


# Image batches go through the encoder in channels_last memory format on CPU (see QNetwork).
CHANNELS_LAST_ON_CPU = True

LinearParameters = list[tuple[torch.Tensor, torch.Tensor]]  # (weight, bias) per linear layer


def _linear_parameters(layer: nn.Module, dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(layer, NoisyLinear):
        return layer.effective_parameters(dtype)
    return layer.weight, layer.bias


class DistributionalHead(nn.Module):
    """C51 head, optionally dueling: logits of shape (batch, actions, atoms)."""

    def __init__(self, in_features: int, num_actions: int, num_atoms: int, *, hidden: int,
                 dueling: bool, noisy: bool, crelu: bool, layer_norm: bool = False,
                 noisy_std: float = 0.5, grad_scale: float = 1.0) -> None:
        super().__init__()
        self.num_actions, self.num_atoms, self.dueling = num_actions, num_atoms, dueling
        # Dueling: the gradient into the encoder is scaled by this (the authors' code: 2^-1/2).
        self.grad_scale = grad_scale if dueling else 1.0
        kw = dict(noisy=noisy, crelu=crelu, layer_norm=layer_norm, noisy_std=noisy_std)
        self.advantage = mlp(in_features, hidden, num_actions * num_atoms, **kw)
        self.value = mlp(in_features, hidden, num_atoms, **kw) if dueling else None

    def _streams(self) -> list[nn.Sequential]:
        return [self.advantage] if self.value is None else [self.advantage, self.value]

    def linear_parameters(self, dtype: torch.dtype | None = None) -> LinearParameters:
        """(weight, bias) of every linear layer as the head would apply them now (noise included).

        Pass them to ``forward`` to apply the head several times with the same noise without
        rebuilding the noisy weights each time. They carry autograd history to the parameters.
        ``dtype``: noisy weights are built in that type (autocast's), not cast at every pass.
        """
        return [_linear_parameters(stream[i], dtype) for stream in self._streams() for i in (0, -1)]

    def forward(self, features: torch.Tensor, parameters: LinearParameters | None = None) -> torch.Tensor:
        features = scale_gradient(features, self.grad_scale)
        outputs = []
        for k, stream in enumerate(self._streams()):
            if parameters is None:
                outputs.append(stream(features))
            else:
                (w1, b1), (w2, b2) = parameters[2 * k], parameters[2 * k + 1]
                hidden = F.linear(features, w1, b1)
                for module in list(stream)[1:-1]:  # [LayerNorm], activation
                    hidden = module(hidden)
                outputs.append(F.linear(hidden, w2, b2))
        advantage = outputs[0].view(-1, self.num_actions, self.num_atoms)
        if self.value is None:
            return advantage
        value = outputs[1].view(-1, 1, self.num_atoms)
        return value + advantage - advantage.mean(dim=1, keepdim=True)


class QNetwork(nn.Module):
    """``encoder`` + ``head``: the two names that SAM scopes and Reset target.

    On CPU, image inputs go through the encoder in ``channels_last`` memory format (the same
    values; oneDNN's convolutions are much faster on it). The flattened features keep NCHW order.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.device.type == "cpu" and CHANNELS_LAST_ON_CPU:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.encoder(x)

    def forward(self, x: torch.Tensor, head_parameters: LinearParameters | None = None) -> torch.Tensor:
        return self.head(self.features(x), head_parameters)
