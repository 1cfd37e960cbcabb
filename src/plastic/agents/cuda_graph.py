"""Run a training step as a replayed CUDA graph (``train.cuda_graph``).

A batch-32 Rainbow update is some 1,300 small kernels; on a GPU their launches, not their
arithmetic, set its time. ``GraphedStep`` records the step once into a ``torch.cuda.CUDAGraph``
and from then on copies each call's inputs into the recorded (static) input tensors and replays
the graph: one launch. It follows PyTorch's whole-network capture recipe (CUDA semantics, "CUDA
Graphs"): a few eager warm-up steps on a side stream first (they create the optimizer's state and
the libraries' handles; they are real steps, not thrown away), then one capture, then replays.

What the step may and may not do: only work on tensors of the device (no ``.item()``, no host
copies, no decision on a tensor's value), the same tensors every time (parameters, buffers and
optimizer state are updated in place), and the same Python path for every call until
``invalidate()`` — which its owner calls whenever that path or those tensors change (a Reset
that clears or rebuilds the optimizer state, a checkpoint loaded). The next call then warms up
and captures again.

Inputs are nested dataclasses, dicts, lists and tuples of tensors (or None); every call must give
the same structure and shapes. The outputs (a dict of tensors) live in the graph's memory and
are overwritten by the next replay, so copies are returned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch


def tensors_of(value: Any) -> list[torch.Tensor]:
    """The tensors of a nested structure, in a fixed order (dict keys sorted)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return []
    if isinstance(value, dict):
        return [t for key in sorted(value) for t in tensors_of(value[key])]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensors_of(item)]
    if dataclasses.is_dataclass(value):
        return [t for f in dataclasses.fields(value) for t in tensors_of(getattr(value, f.name))]
    raise TypeError(f"cannot hold a {type(value).__name__} as a graph input")


def _cloned(value: Any) -> Any:
    """A copy of a nested structure with every tensor cloned (the static inputs)."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {key: _cloned(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cloned(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _cloned(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    return value


def check_graph_device(device: torch.device, whose: str = "this run's") -> None:
    """Refuse ``train.cuda_graph`` on a device that is not a CUDA one, in one wording everywhere."""
    if device.type != "cuda":
        raise ValueError(f"train.cuda_graph needs a CUDA device; {whose} is {device}")


class GraphedStep:
    """``step(*inputs) -> dict[str, Tensor]``, run eagerly ``warmup`` times after each
    ``invalidate()`` (and at first), then captured once and replayed."""

    def __init__(self, step: Callable[..., dict[str, torch.Tensor]], *, warmup: int = 3) -> None:
        self._check_device()
        self.step, self.warmup = step, warmup
        self.captures = 0  # how many times a graph was recorded (a test and the logs read it)
        self.invalidate()

    def invalidate(self) -> None:
        """Forget the graph: the step's tensors or Python path changed."""
        self._graph: Any = None
        self._static_inputs: tuple[Any, ...] = ()
        self._static_tensors: list[torch.Tensor] = []  # tensors_of(_static_inputs), once
        self._static_output: dict[str, torch.Tensor] = {}
        self._warm = 0

    def __call__(self, *inputs: Any) -> dict[str, torch.Tensor]:
        if self._graph is None and self._warm < self.warmup:
            self._warm += 1
            return self._warm_up(inputs)
        if self._graph is None:
            self._static_inputs = _cloned(inputs)
            self._static_tensors = tensors_of(self._static_inputs)
            self._graph, self._static_output = self._record(self._static_inputs)
            self.captures += 1
        source = tensors_of(inputs)
        if len(source) != len(self._static_tensors):
            raise ValueError(f"a graphed step got {len(source)} input tensors; it was recorded "
                             f"with {len(self._static_tensors)}")
        torch._foreach_copy_(self._static_tensors, source)
        self._graph.replay()
        return {key: value.clone() for key, value in self._static_output.items()}

    # The CUDA-specific parts (a test replaces them to check the rest on a CPU).
    def _check_device(self) -> None:
        if not torch.cuda.is_available():
            raise ValueError("train.cuda_graph needs a CUDA GPU, and torch sees none")

    def _warm_up(self, inputs: tuple[Any, ...]) -> dict[str, torch.Tensor]:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            output = self.step(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        return output

    def _record(self, static_inputs: tuple[Any, ...]) -> tuple[Any, dict[str, torch.Tensor]]:
        """(the recorded graph, its output tensors); recording runs nothing."""
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = self.step(*static_inputs)
        return graph, output
