"""Sharpness-Aware Minimization (Foret et al., 2021) and its adaptive form ASAM (Kwon et al., 2021).

One SAM update, for parameters w with loss L:

1. ``first_step``: take the clean gradient g = ∇L(w) and move to the worst point in a ρ-ball,
   w + e with e = ρ·g/‖g‖ (ASAM: e = ρ·|w|²⊙g/‖|w|⊙g‖).
2. Re-compute the gradient there, g' = ∇L(w + e).
3. ``second_step``: restore w exactly and let the base optimizer step with g'.

PLASTIC applies SAM to the encoder only (paper Sec. 4, Appendix B): a param group with
``"sam": False`` is never perturbed, does not enter ‖g‖, and is updated with its clean gradient g.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.optim import Optimizer

_EPS = 1e-12
EXCLUSION_MODES = ("clean", "authors", "authors-dmc")
SCOPES = ("encoder", "head", "all")


def scoped_param_groups(encoder: Iterable[torch.nn.Parameter], head: Iterable[torch.nn.Parameter],
                        scope: str) -> list[dict[str, Any]]:
    """SAM's param groups for a network of an encoder and a head: ``"sam"`` on the part(s)
    ``scope`` names (the paper: "encoder"), the other stepping with its clean gradient. A part
    without parameters gets no group; ``scope`` may not name only such a part."""
    if scope not in SCOPES:
        raise ValueError(f"SAM: unknown scope {scope!r}; valid: {', '.join(SCOPES)}")
    groups = [{"params": list(params), "sam": scope in (part, "all")}
              for part, params in (("encoder", encoder), ("head", head))]
    if not any(group["params"] for group in groups if group["sam"]):
        raise ValueError(f"SAM on the {scope}, which has no parameters: give it some, or choose "
                         f"another scope ({', '.join(SCOPES)})")
    return [group for group in groups if group["params"]]


class SAM(Optimizer):
    """Wrap any ``torch.optim.Optimizer`` class with SAM.

    Args:
        params: parameters or param groups. A group may set ``"sam": False`` (take the clean
            gradient, never perturbed) and its own ``"rho"``/``"adaptive"``.
        base_optimizer: the optimizer class that makes the actual update (e.g. ``torch.optim.Adam``).
        rho: radius of the perturbation ball.
        adaptive: ASAM's scale-invariant perturbation.
        exclusion: how ``"sam": False`` groups are treated. ``"clean"`` (default) is the paper's
            stated intent. ``"authors"`` reproduces the PLASTIC authors' code: those groups are
            perturbed too (and enter the norm), and their final gradient is the clean gradient plus
            the gradient at the perturbed point (their Atari code). ``"authors-dmc"``, their DMC
            code: those groups are perturbed too (and enter the norm), and their final gradient is
            the clean gradient alone.
        **base_kwargs: passed to ``base_optimizer`` (lr, eps, weight_decay, ...).

    Usage, explicit::

        loss_fn().backward(); opt.first_step(zero_grad=True)
        loss_fn().backward(); opt.second_step(zero_grad=True)

    or ``opt.step(closure)`` where ``closure`` zeroes nothing, computes the loss, calls
    ``backward()`` and returns the loss; ``step`` calls it twice and returns the clean loss.
    Gradient clipping composes: call ``restore()`` after the second backward, clip (all groups
    now hold their final gradients), then ``second_step()``; or, the same::

        loss_fn().backward()
        with opt.perturbed():
            loss_fn().backward()
        clip(...); opt.second_step()
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[Optimizer] = torch.optim.Adam,
        rho: float = 0.05,
        adaptive: bool = False,
        exclusion: str = "clean",
        **base_kwargs: Any,
    ) -> None:
        if not (isinstance(rho, (int, float)) and rho >= 0.0):
            raise ValueError(f"SAM: rho must be a non-negative number, got {rho!r}")
        if exclusion not in EXCLUSION_MODES:
            raise ValueError(
                f"SAM: unknown exclusion {exclusion!r}; valid choices: {', '.join(EXCLUSION_MODES)}"
            )
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, Optimizer)):
            raise ValueError(
                "SAM: base_optimizer must be a torch.optim.Optimizer class "
                f"(e.g. torch.optim.Adam), got {base_optimizer!r}"
            )
        params = list(params)
        if not params:
            raise ValueError("SAM: got an empty parameter list; pass the parameters to optimise")
        super().__init__(params, dict(rho=rho, adaptive=adaptive, sam=True))
        for group in self.param_groups:
            if group["rho"] < 0:
                raise ValueError(f"SAM: rho must be non-negative, got {group['rho']!r} in a group")
        self.exclusion = exclusion
        # The base optimizer shares our param groups (so lr schedules on either affect both) and
        # our state (so reset_ and state_dict see the base optimizer's moments).
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        # Transient buffers of one SAM update; not part of state_dict.
        self._saved_params: list[torch.Tensor] = []
        self._perturbed: list[torch.Tensor] = []
        self._clean_grads: list[torch.Tensor] = []
        self._clean_params: list[torch.Tensor] = []

    def _split_params(self) -> tuple[list[tuple[dict, list[torch.Tensor]]], list[torch.Tensor]]:
        """(groups to perturb with their params that have grads, params that take clean grads)."""
        perturb, clean = [], []
        for group in self.param_groups:
            with_grad = [p for p in group["params"] if p.grad is not None]
            if not with_grad:
                continue
            if group["sam"] or self.exclusion != "clean":
                perturb.append((group, with_grad))
            if not group["sam"]:
                clean.extend(with_grad)
        return perturb, clean

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move the SAM parameters to w + e(w), keeping w to restore in ``second_step``."""
        if self._perturbed:
            raise RuntimeError("SAM.first_step called twice without second_step")
        perturb, clean = self._split_params()
        if perturb:
            self._perturb(perturb)
        self._clean_params = clean
        # Take the clean gradients out of the params so the second backward cannot touch them.
        self._clean_grads = [p.grad for p in clean]
        for p in clean:
            p.grad = None
        if zero_grad:
            self.zero_grad(set_to_none=True)

    def _perturb(self, perturb: list[tuple[dict, list[torch.Tensor]]]) -> None:
        # ‖g‖ (or ‖|w|⊙g‖ for ASAM) over all perturbed params together, kept on the device.
        scaled_grads: list[list[torch.Tensor]] = []
        for group, params in perturb:
            grads = [p.grad for p in params]
            if group["adaptive"]:
                grads = torch._foreach_mul(grads, torch._foreach_abs(params))
            scaled_grads.append(grads)
        norms = [torch.stack(torch._foreach_norm(g)) for g in scaled_grads]
        grad_norm = torch.linalg.vector_norm(torch.cat(norms))
        scale = 1.0 / (grad_norm + _EPS)
        for (group, params), grads in zip(perturb, scaled_grads):
            if group["adaptive"]:
                # e = ρ·|w|⊙(|w|⊙g)/‖|w|⊙g‖
                grads = torch._foreach_mul(grads, torch._foreach_abs(params))
            step = torch._foreach_mul(grads, scale * group["rho"])
            self._saved_params.extend(torch._foreach_mul(params, 1.0))  # an exact copy
            torch._foreach_add_(params, step)
            self._perturbed.extend(params)

    @torch.no_grad()
    def restore(self) -> None:
        """Put back w exactly and the clean gradients of ``"sam": False`` groups.

        ``second_step`` does this itself; call it first to clip or inspect the final gradients.
        """
        if self._perturbed:
            torch._foreach_copy_(self._perturbed, self._saved_params)
        accumulate = self.exclusion == "authors"
        for p, g in zip(self._clean_params, self._clean_grads):
            p.grad = g.add_(p.grad) if accumulate and p.grad is not None else g
        self._perturbed, self._saved_params = [], []
        self._clean_params, self._clean_grads = [], []

    @contextmanager
    def perturbed(self) -> Iterator[None]:
        """Inside: the parameters at the perturbed point w + e, gradients zeroed (``first_step``)
        for the second backward. On leaving: w and the clean gradients of ``"sam": False``
        groups put back (``restore``), every group holding its final gradient."""
        self.first_step(zero_grad=True)
        try:
            yield
        finally:
            self.restore()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore w (if not done yet) and step the base optimizer with the final gradients."""
        self.restore()
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad(set_to_none=True)

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:  # type: ignore[override]
        """Full SAM update. ``closure`` computes the loss and calls ``backward()``; returns the clean loss."""
        if closure is None:
            raise ValueError(
                "SAM.step needs a closure that computes the loss and calls backward(); "
                "or call first_step() and second_step() yourself"
            )
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            closure()
        self.second_step()
        return loss

    def __getstate__(self) -> dict[str, Any]:
        # torch's Optimizer pickles only defaults, state and param groups; keep the rest too, so
        # that copy.deepcopy and pickle give a working SAM (shared groups/state stay shared).
        state = super().__getstate__()
        state.update(base_optimizer=self.base_optimizer, exclusion=self.exclusion)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "base_optimizer" not in state:  # torch's load_state_dict path; it re-links afterwards
            super().__setstate__(state)
            return
        base_optimizer, exclusion = state.pop("base_optimizer"), state.pop("exclusion")
        super().__setstate__(state)
        self.base_optimizer, self.exclusion = base_optimizer, exclusion
        self.param_groups = base_optimizer.param_groups
        self.state = base_optimizer.state
        self._saved_params, self._perturbed = [], []
        self._clean_grads, self._clean_params = [], []

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # torch rebuilds param_groups and state on load: share them with the base optimizer again.
        self.base_optimizer.param_groups = self.param_groups
        self.base_optimizer.state = self.state
