"""Encoders and heads built from flags: the paper's components are switches, not new classes."""

from __future__ import annotations

import torch
from torch import nn

from plastic.nn.layers import CReLU, LayerNorm2d, NoisyLinear


def _conv_block(in_ch: int, out_ch: int, kernel: int, stride: int, layer_norm: bool) -> list[nn.Module]:
    block: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride)]
    if layer_norm:
        block.append(LayerNorm2d(out_ch))
    block.append(nn.ReLU())
    return block


def nature_encoder(in_channels: int, layer_norm: bool = False) -> nn.Sequential:
    """Nature-DQN CNN (32-64-64); for 84×84 inputs it outputs 3136 features."""
    return nn.Sequential(
        *_conv_block(in_channels, 32, 8, 4, layer_norm),
        *_conv_block(32, 64, 4, 2, layer_norm),
        *_conv_block(64, 64, 3, 1, layer_norm),
        nn.Flatten(),
    )


def minatar_encoder(in_channels: int, layer_norm: bool = False) -> nn.Sequential:
    """MinAtar's DQN encoder (Young & Tian, 2019): one 3×3 conv with 16 channels."""
    return nn.Sequential(*_conv_block(in_channels, 16, 3, 1, layer_norm), nn.Flatten())


ENCODERS = {"nature": nature_encoder, "minatar": minatar_encoder}


def make_encoder(name: str, in_channels: int, layer_norm: bool = False) -> nn.Sequential:
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; valid encoders: {', '.join(ENCODERS)}")
    return ENCODERS[name](in_channels, layer_norm)


def encoder_output_size(encoder: nn.Module, input_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(encoder(torch.zeros(1, *input_shape)).shape[1])


def mlp(in_features: int, hidden: int, out_features: int, *, noisy: bool, crelu: bool,
        noisy_std: float = 0.5) -> nn.Sequential:
    """Linear → ReLU (or CReLU on hidden/2 units, concatenated back to hidden) → Linear."""
    def linear(i: int, o: int) -> nn.Module:
        return NoisyLinear(i, o, noisy_std) if noisy else nn.Linear(i, o)

    if crelu:
        if hidden % 2:
            raise ValueError(f"a CReLU head needs an even hidden size, got {hidden}")
        return nn.Sequential(linear(in_features, hidden // 2), CReLU(), linear(hidden, out_features))
    return nn.Sequential(linear(in_features, hidden), nn.ReLU(), linear(hidden, out_features))


class DistributionalHead(nn.Module):
    """C51 head, optionally dueling: logits of shape (batch, actions, atoms)."""

    def __init__(self, in_features: int, num_actions: int, num_atoms: int, *, hidden: int,
                 dueling: bool, noisy: bool, crelu: bool, noisy_std: float = 0.5) -> None:
        super().__init__()
        self.num_actions, self.num_atoms, self.dueling = num_actions, num_atoms, dueling
        kw = dict(noisy=noisy, crelu=crelu, noisy_std=noisy_std)
        self.advantage = mlp(in_features, hidden, num_actions * num_atoms, **kw)
        self.value = mlp(in_features, hidden, num_atoms, **kw) if dueling else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        advantage = self.advantage(features).view(-1, self.num_actions, self.num_atoms)
        if self.value is None:
            return advantage
        value = self.value(features).view(-1, 1, self.num_atoms)
        return value + advantage - advantage.mean(dim=1, keepdim=True)


class QNetwork(nn.Module):
    """``encoder`` + ``head``: the two names that SAM scopes and Reset target."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))

    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        for module in self.modules():
            if isinstance(module, NoisyLinear):
                module.reset_noise(generator)
