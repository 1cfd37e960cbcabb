"""Memory-efficient uniform and prioritized n-step replay (see ``plastic.replay.buffer``)."""

from plastic.replay.buffer import Batch, ReplayBuffer
from plastic.replay.sum_tree import SumTree

__all__ = ["Batch", "ReplayBuffer", "SumTree"]
