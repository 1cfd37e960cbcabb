"""An array-based sum tree for batched proportional (prioritized) sampling.

The tree lives in one flat float64 array: node 1 is the root, node ``i`` has children ``2i`` and
``2i + 1``, and the leaves are nodes ``[L, 2L)``, where ``L`` is the capacity rounded up to a power
of two (padding leaves stay 0). Every operation handles a whole batch at once: an update writes the
leaves and then recomputes their ancestors one level per numpy step, and a search descends all
queries together, one level per numpy step. Parents are always recomputed as the sum of their two
children (never patched by a delta), so rounding errors do not accumulate over many updates.
"""

from __future__ import annotations

import math

import numpy as np


class SumTree:
    """Non-negative values on ``capacity`` leaves, with their total and prefix-sum search."""

    def __init__(self, capacity: int) -> None:
        if int(capacity) != capacity or capacity <= 0:
            raise ValueError(f"SumTree capacity must be a positive integer, got {capacity!r}")
        self.capacity = int(capacity)
        self._num_leaves = 1 << (self.capacity - 1).bit_length()
        self._depth = self._num_leaves.bit_length() - 1
        self._nodes = np.zeros(2 * self._num_leaves, dtype=np.float64)

    @property
    def total(self) -> float:
        """Sum of all leaf values."""
        return float(self._nodes[1])

    @property
    def nbytes(self) -> int:
        return int(self._nodes.nbytes)

    def values(self) -> np.ndarray:
        """A copy of the ``capacity`` leaf values."""
        return self._nodes[self._num_leaves : self._num_leaves + self.capacity].copy()

    def get(self, index: np.ndarray) -> np.ndarray:
        """Leaf values at ``index`` (any integer array)."""
        index = self._check_index(index)
        return self._nodes[self._num_leaves + index]

    def update(self, index: np.ndarray, value: np.ndarray) -> None:
        """Set leaves ``index`` to ``value``; for a repeated index the last value wins."""
        index = self._check_index(index).ravel()
        value = np.asarray(value, dtype=np.float64).ravel()
        if value.shape != index.shape:
            raise ValueError(
                f"SumTree.update needs one value per index, got {value.size} values for "
                f"{index.size} indices"
            )
        if not np.all(np.isfinite(value)) or np.any(value < 0):
            raise ValueError("SumTree values must be finite and >= 0")
        if index.size == 0:
            return
        if np.unique(index).size != index.size:
            _, first_in_reversed = np.unique(index[::-1], return_index=True)
            keep = index.size - 1 - first_in_reversed
            index, value = index[keep], value[keep]
        nodes = index + self._num_leaves
        self._nodes[nodes] = value
        for _ in range(self._depth):
            # A parent listed twice gets the same sum twice: duplicates are harmless here.
            nodes >>= 1
            self._nodes[nodes] = self._nodes[2 * nodes] + self._nodes[2 * nodes + 1]

    def set(self, index: int, value: float) -> None:
        """Set one leaf (a scalar fast path of ``update``, for per-step bookkeeping)."""
        if not 0 <= index < self.capacity:
            raise ValueError(f"SumTree index must lie in [0, {self.capacity}), got {index}")
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"SumTree values must be finite and >= 0, got {value}")
        nodes = self._nodes
        node = int(index) + self._num_leaves
        nodes[node] = value
        node >>= 1
        while node:
            nodes[node] = nodes[2 * node] + nodes[2 * node + 1]
            node >>= 1

    def set_values(self, value: np.ndarray) -> None:
        """Replace all ``capacity`` leaf values and rebuild the tree."""
        value = np.asarray(value, dtype=np.float64)
        if value.shape != (self.capacity,):
            raise ValueError(
                f"SumTree.set_values needs shape ({self.capacity},), got {value.shape}"
            )
        if not np.all(np.isfinite(value)) or np.any(value < 0):
            raise ValueError("SumTree values must be finite and >= 0")
        self._nodes[:] = 0.0
        self._nodes[self._num_leaves : self._num_leaves + self.capacity] = value
        level_start = self._num_leaves
        while level_start > 1:
            parent_start = level_start // 2
            children = self._nodes[level_start : 2 * level_start]
            self._nodes[parent_start:level_start] = children[0::2] + children[1::2]
            level_start = parent_start

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf index whose cumulative range ``[c[i-1], c[i])`` holds each ``mass``.

        The same as ``np.searchsorted(np.cumsum(values), mass, side="right")`` for masses in
        ``[0, total)``; a mass at or past the total (rounding) gives the last positive leaf. A leaf
        of value 0 is never returned.
        """
        if self._nodes[1] <= 0:
            raise ValueError("SumTree.find needs a positive total; every leaf is 0")
        mass = np.array(mass, dtype=np.float64, copy=True).ravel()
        leaves = self._descend(mass.copy(), guarded=False)
        # Rounding can push a query into an empty subtree; redo those few with guarded steps.
        lost = self._nodes[leaves + self._num_leaves] <= 0
        if lost.any():
            leaves[lost] = self._descend(mass[lost], guarded=True)
        return leaves

    def _descend(self, mass: np.ndarray, guarded: bool) -> np.ndarray:
        nodes = np.ones(mass.shape, dtype=np.int64)
        for _ in range(self._depth):
            left = nodes << 1
            left_mass = self._nodes[left]
            go_right = mass >= left_mass
            if guarded:  # never step into an empty subtree
                go_right = (go_right & (self._nodes[left + 1] > 0)) | (left_mass <= 0)
            mass -= left_mass * go_right
            nodes = left + go_right
        return nodes - self._num_leaves

    def _check_index(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index)
        if index.size and not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"SumTree indices must be integers, got dtype {index.dtype}")
        index = index.astype(np.int64, copy=True)
        if index.size and (index.min() < 0 or index.max() >= self.capacity):
            raise ValueError(
                f"SumTree indices must lie in [0, {self.capacity}), got range "
                f"[{index.min()}, {index.max()}]"
            )
        return index
