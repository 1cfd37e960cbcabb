"""Reset (Nikishin et al., 2022) and shrink-and-perturb (Ash & Adams, 2020) of named submodules.

PLASTIC resets the whole head of the online and target networks every fixed number of updates
(paper Sec. 4) and, at high replay ratios, shrinks and perturbs the encoder at the same time:
θ ← shrink·θ + (1 − shrink)·θ_new with θ_new a fresh initialisation.

Parameters are changed in place, so they stay the same tensors inside any optimizer: only their
optimizer state (e.g. Adam's moments and step count) is cleared.

``ResetSchedule`` says when a Reset is due and whether it shrinks the encoder; the training loop
asks it after every update (and, for an interval counted in agent steps, after every step) and
calls the agent's ``reset``. ``reset_`` does the re-initialising.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

RESET_INTERVAL_UNITS = ("updates", "agent_steps")  # what ``reset.interval`` counts


@dataclass(frozen=True)
class ResetSchedule:
    """When Resets happen: after every ``interval``-th update, or with ``unit="agent_steps"``
    after every ``interval``-th agent step but the last (None: never), and what they do to the
    encoder: shrink-and-perturb it by ``encoder_shrink`` (None: leave it as it is).

    Built once per run from the config (``from_config``); it holds no state, so a run resumed
    from a checkpoint resets at the same updates as one that was never stopped.
    """

    interval: int | None
    encoder_shrink: float | None = None
    unit: str = "updates"  # what ``interval`` counts: "updates" or "agent_steps"

    def __post_init__(self) -> None:
        if self.interval is not None and not self.interval >= 1:
            raise ValueError(f"reset.interval must be >= 1, got {self.interval!r}")
        if self.unit not in RESET_INTERVAL_UNITS:
            raise ValueError(f"reset.interval_unit: unknown value {self.unit!r}; "
                             f"valid: {', '.join(RESET_INTERVAL_UNITS)}")

    @classmethod
    def from_config(cls, config: Any) -> ResetSchedule:
        """``reset.interval`` apart (in ``reset.interval_unit``) when ``reset.enabled``; the encoder
        is shrunk at replay ratios from ``reset.encoder_shrink_min_replay_ratio`` (the authors: 4, 8)."""
        reset = config.reset
        if not reset.enabled:
            return cls(None)
        shrink = config.train.replay_ratio >= reset.encoder_shrink_min_replay_ratio
        return cls(reset.interval, reset.encoder_shrink if shrink else None, reset.interval_unit)

    def due(self, updates: int) -> bool:
        """Whether a Reset follows the update that brought the count to ``updates``."""
        return self.interval is not None and self.unit == "updates" and updates > 0 \
            and updates % self.interval == 0

    def due_after_step(self, step: int, total: int) -> bool:
        """Whether a Reset follows agent step ``step`` of ``total`` (its updates and evaluation
        done): the authors' DMC loop resets every ``interval`` steps, except after its last."""
        return self.interval is not None and self.unit == "agent_steps" and step % self.interval == 0 \
            and 0 < step < total


def _own_params(module: nn.Module) -> list[nn.Parameter]:
    return list(module.parameters(recurse=False))


def _fresh_copy(sub: nn.Module, name: str) -> nn.Module:
    """A copy of ``sub`` re-initialised by each of its modules' own ``reset_parameters``."""
    fresh = copy.deepcopy(sub)
    for child_name, child in fresh.named_modules():
        if hasattr(child, "reset_parameters"):
            child.reset_parameters()
        elif _own_params(child):
            full = f"{name}.{child_name}" if child_name else name
            raise ValueError(
                f"reset_: module {full!r} ({type(child).__name__}) holds parameters but has no "
                "reset_parameters() to re-initialise them; give it one"
            )
    return fresh


def _resolve(module: nn.Module, names: Iterable[str], role: str) -> dict[str, nn.Module]:
    modules = dict(module.named_modules())
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise ValueError("reset_: names is empty; name the submodules to reset, e.g. ['head']")
    unknown = [n for n in names if n not in modules]
    if unknown:
        valid = ", ".join(repr(n) for n in modules if n) or "(none)"
        raise ValueError(f"reset_: unknown submodule {unknown[0]!r} in the {role}; valid names: {valid}")
    return {n: modules[n] for n in names}


@torch.no_grad()
def reset_(
    module: nn.Module,
    names: Iterable[str],
    *,
    target: nn.Module | None = None,
    optimizer: Optimizer | None = None,
    shrink: float = 0.0,
) -> list[str]:
    """Re-initialise (``shrink=0``) or shrink-and-perturb the named submodules of ``module``.

    Args:
        module: the online network.
        names: dotted submodule names as in ``module.named_modules()`` (``""`` is the whole module).
        target: a network of the same structure (e.g. the EMA target); its counterparts get the
            same result computed from the same fresh initialisation.
        optimizer: whose state is cleared for exactly the touched parameters of ``module``.
        shrink: θ ← shrink·θ + (1 − shrink)·θ_new; 0 is a full reset. Buffers (e.g. noise) are
            re-initialised only by a full reset.

    Returns:
        The dotted names of the parameters of ``module`` that were touched.
    """
    if not 0.0 <= shrink < 1.0:
        raise ValueError(f"reset_: shrink must be in [0, 1), got {shrink!r}")
    online = _resolve(module, names, "module")
    counterparts = _resolve(target, list(online), "target") if target is not None else {}

    touched: list[str] = []
    seen: set[int] = set()
    for name, sub in online.items():
        fresh = _fresh_copy(sub, name)
        fresh_state = fresh.state_dict()
        for copies in [sub, counterparts.get(name)]:
            if copies is None:
                continue
            own_state = copies.state_dict(keep_vars=True)
            if own_state.keys() != fresh_state.keys():
                raise ValueError(f"reset_: target's {name!r} does not have the module's structure")
            for key, value in own_state.items():
                new = fresh_state[key]
                if shrink == 0.0:
                    value.copy_(new)
                elif isinstance(value, nn.Parameter):
                    value.mul_(shrink).add_(new, alpha=1.0 - shrink)
        prefix = f"{name}." if name else ""
        for param_name, param in sub.named_parameters():
            if id(param) not in seen:
                seen.add(id(param))
                touched.append(prefix + param_name)
                if optimizer is not None:
                    optimizer.state.pop(param, None)
    return touched
