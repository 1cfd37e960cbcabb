"""The small ConvNet of PLASTIC's synthetic experiments and the methods compared on it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from plastic.nn.layers import CReLU

# Channel widths and kernels of the paper's model (PLASTIC's appendix, synthetic experiments).
CONV_CHANNELS = ((3, 32, 3), (32, 64, 1), (64, 64, 1))  # (in, out, stride); all kernels 3×3
HEAD_WIDTHS = (512, 128)
CRELU_HEAD_WIDTHS = (384, 192)  # CReLU doubles them back to 768 and 384


@dataclass(frozen=True)
class Method:
    """Which PLASTIC components a run uses."""

    layer_norm: bool = False
    sam: bool = False
    crelu: bool = False
    reset: bool = False

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


METHODS: dict[str, Method] = {
    "vanilla": Method(),
    "ln": Method(layer_norm=True),
    "sam": Method(sam=True),
    "crelu": Method(crelu=True),
    "reset": Method(reset=True),
    "plastic": Method(layer_norm=True, sam=True, crelu=True, reset=True),
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid choices: {', '.join(METHODS)}")
    return METHODS[name]


def conv_output_size(image_size: int) -> int:
    size = image_size
    for _, _, stride in CONV_CHANNELS:
        size = (size - 3) // stride + 1
    if size < 1:
        raise ValueError(f"images of {image_size}×{image_size} are too small for the ConvNet")
    return size


def flatten_dim(image_size: int) -> int:
    """Features entering the head: 64·6·6 = 2304 for 32×32 inputs."""
    return CONV_CHANNELS[-1][1] * conv_output_size(image_size) ** 2


class SyntheticConvNet(nn.Module):
    """Convs 3→32 (stride 3), 32→64, 64→64, each 3×3 + normaliser + ReLU; then an MLP head.

    ``layer_norm``: the normaliser is ``GroupNorm(1, C)``, which normalises each sample over
    C, H and W together — the "one group over channels" LayerNorm of the authors' synthetic
    code (unlike ``plastic.nn.LayerNorm2d``, which normalises over C at each position).
    ``crelu``: the head is 2304→384, CReLU, 768→192, CReLU, 384→classes (CReLU in the head only);
    otherwise 2304→512, ReLU, 512→128, ReLU, 128→classes.

    Submodules are named ``backbone`` and ``head`` so ``plastic.reset_(model, ["head"])`` resets
    the MLP.
    """

    def __init__(
        self,
        layer_norm: bool = False,
        crelu: bool = False,
        num_classes: int = 10,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out, stride in CONV_CHANNELS:
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride))
            layers.append(nn.GroupNorm(1, c_out) if layer_norm else nn.Identity())
            layers.append(nn.ReLU())
        self.backbone = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        features = flatten_dim(image_size)
        widths = CRELU_HEAD_WIDTHS if crelu else HEAD_WIDTHS
        head: list[nn.Module] = []
        for width in widths:
            head.append(nn.Linear(features, width))
            head.append(CReLU(dim=-1) if crelu else nn.ReLU())
            features = 2 * width if crelu else width
        head.append(nn.Linear(features, num_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.flatten(self.backbone(x)))


def build_model(method: Method, num_classes: int = 10, image_size: int = 32) -> SyntheticConvNet:
    return SyntheticConvNet(method.layer_norm, method.crelu, num_classes, image_size)
