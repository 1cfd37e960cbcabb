"""plastic: PLASTIC (Lee, Cho, Kim et al., NeurIPS 2023) and its building blocks.

The building blocks work on any ``torch.nn.Module``::

    from plastic import SAM, CReLU, LayerNorm2d, NoisyLinear, reset_, metrics
"""

from plastic import metrics
from plastic.nn.layers import CReLU, LayerNorm2d, NoisyLinear
from plastic.optim.sam import SAM
from plastic.reset import reset_

__version__ = "0.1.0"
__all__ = ["SAM", "CReLU", "LayerNorm2d", "NoisyLinear", "metrics", "reset_", "__version__"]
