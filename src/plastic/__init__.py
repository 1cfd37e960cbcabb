"""plastic: PLASTIC (Lee, Cho, Kim et al., NeurIPS 2023) and its building blocks.

The building blocks work on any ``torch.nn.Module``::

    from plastic import SAM, CReLU, LayerNorm2d, NoisyLinear, reset_, metrics

They are imported on first use, so that ``import plastic`` (and ``plastic --help``) does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plastic import metrics
    from plastic.nn.layers import CReLU, LayerNorm2d, NoisyLinear
    from plastic.optim.sam import SAM
    from plastic.reset import reset_

__version__ = "0.1.0"
__all__ = ["SAM", "CReLU", "LayerNorm2d", "NoisyLinear", "metrics", "reset_", "__version__"]

# name -> (module, attribute in it; None: the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "SAM": ("plastic.optim.sam", "SAM"),
    "CReLU": ("plastic.nn.layers", "CReLU"),
    "LayerNorm2d": ("plastic.nn.layers", "LayerNorm2d"),
    "NoisyLinear": ("plastic.nn.layers", "NoisyLinear"),
    "metrics": ("plastic.metrics", None),
    "reset_": ("plastic.reset", "reset_"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'plastic' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
