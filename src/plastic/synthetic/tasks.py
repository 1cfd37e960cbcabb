"""The two non-stationary tasks of PLASTIC's Section 3.

- ``input`` adaptation: the training set is split into ``chunks`` random, disjoint chunks; at
  stage k the model trains on chunks 0..k (new inputs keep arriving, labels stay true).
- ``label`` adaptation: all training data from the start; at stage k every label, train and
  test alike, becomes (y + k) mod num_classes (the inputs stay, the targets move).
"""

from __future__ import annotations

import numpy as np
import torch

TASKS = ("input", "label")


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid choices: {', '.join(TASKS)}")
    return task


def make_chunks(num_train: int, num_chunks: int, seed: int) -> list[np.ndarray]:
    """A random partition of ``range(num_train)`` into ``num_chunks`` near-equal chunks."""
    if not 1 <= num_chunks <= num_train:
        raise ValueError(
            f"chunks must be between 1 and the number of training images ({num_train}), got {num_chunks}"
        )
    order = np.random.default_rng(seed).permutation(num_train)
    return [np.sort(c) for c in np.array_split(order, num_chunks)]


def training_indices(task: str, stage: int, chunks: list[np.ndarray]) -> np.ndarray:
    """Indices of the training images used at ``stage``."""
    check_task(task)
    if not 0 <= stage < len(chunks):
        raise ValueError(f"stage must be in [0, {len(chunks)}), got {stage}")
    if task == "input":
        return np.concatenate(chunks[: stage + 1])
    return np.concatenate(chunks)


def stage_labels(task: str, labels: torch.Tensor, stage: int, num_classes: int) -> torch.Tensor:
    """The targets at ``stage``: true labels (input task) or shifted by the stage (label task)."""
    check_task(task)
    if task == "input":
        return labels
    return (labels + stage) % num_classes


class EpochSampler:
    """Mini-batches of ``indices`` without replacement, reshuffled every pass.

    A pass ends with a smaller batch when ``batch_size`` does not divide the set, as with a
    shuffling ``DataLoader``; a set smaller than a batch is one batch.
    """

    def __init__(self, indices: np.ndarray, batch_size: int, generator: torch.Generator) -> None:
        if len(indices) == 0:
            raise ValueError("EpochSampler: no training indices")
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.batch_size = batch_size
        self.generator = generator
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def next(self) -> torch.Tensor:
        if self._pos >= len(self._order):
            perm = torch.randperm(len(self.indices), generator=self.generator)
            self._order = self.indices[perm]
            self._pos = 0
        batch = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return batch
