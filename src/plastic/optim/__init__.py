"""Optimizers."""

from plastic.optim.sam import SAM

__all__ = ["SAM"]
