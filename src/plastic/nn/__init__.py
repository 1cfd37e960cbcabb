"""Network building blocks."""

from plastic.nn.layers import CReLU, LayerNorm2d, NoisyLinear

__all__ = ["CReLU", "LayerNorm2d", "NoisyLinear"]
