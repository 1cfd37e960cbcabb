"""Plasticity metrics: active and dormant units, loss sharpness, feature rank, norms.

- ``active_units``: fraction of activations that are positive, per activation layer — the
  "active units" of PLASTIC's analysis (a sparse backbone has few, a dense head many).
- ``dormant_units``: fraction of τ-dormant units (Sokar et al., 2023): unit i is dormant when
  E|h_i| / mean_j E|h_j| ≤ τ (a unit of a conv layer is a channel).
- ``hessian_top_eigenvalue``: largest Hessian eigenvalue by power iteration on Hessian-vector
  products (the sharpness PLASTIC plots).
- ``srank`` (Kumar et al., 2021) and ``effective_rank`` (Roy & Vetterli, 2007) of features.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from plastic.nn.layers import CReLU

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, CReLU)


def _capture(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str] | None, crelu_inputs: bool = False
) -> dict[str, torch.Tensor]:
    """Outputs of the named layers (default: every ReLU/CReLU module) for input ``x``; with
    ``crelu_inputs``, the inputs of CReLU modules instead."""
    modules = dict(model.named_modules())
    if layers is None:
        layers = [n for n, m in modules.items() if isinstance(m, ACTIVATION_TYPES)]
        if not layers:
            raise ValueError(
                "no nn.ReLU or CReLU modules found; pass layers=[...] naming the modules to measure"
            )
    unknown = [n for n in layers if n not in modules]
    if unknown:
        valid = ", ".join(repr(n) for n in modules if n)
        raise ValueError(f"unknown layer {unknown[0]!r}; valid names: {valid}")
    outputs: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor, name: str) -> None:
        seen = inputs[0] if crelu_inputs and isinstance(module, CReLU) else out
        outputs[name] = seen.detach()

    handles = [
        modules[name].register_forward_hook(lambda m, i, out, name=name: hook(m, i, out, name))
        for name in layers
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: outputs[name] for name in layers if name in outputs}


@torch.no_grad()
def active_units(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str] | None = None, *,
    crelu_inputs: bool = False,
) -> dict[str, float]:
    """Per layer, the fraction of activations (over batch, units and positions) that are > 0.

    A CReLU's output holds relu(x) and relu(−x), so exactly half of it is positive wherever x ≠ 0:
    ``crelu_inputs=True`` measures CReLU layers on the pre-activations x they split instead (the
    fraction > 0, what a ReLU layer's output would show).
    """
    captured = _capture(model, x, layers, crelu_inputs)
    return {name: (out > 0).float().mean().item() for name, out in captured.items()}


def _unit_scores(out: torch.Tensor) -> torch.Tensor:
    """E|h_i| per unit: mean of |h| over the batch and any spatial dims; units are dim 1."""
    dims = [d for d in range(out.dim()) if d != 1]
    return out.abs().mean(dim=dims)


@torch.no_grad()
def dormant_units(
    model: nn.Module, x: torch.Tensor, tau: float = 0.0, layers: Sequence[str] | None = None
) -> dict[str, float]:
    """Per layer, the fraction of τ-dormant units (Sokar et al., 2023)."""
    if tau < 0:
        raise ValueError(f"dormant_units: tau must be non-negative, got {tau!r}")
    result = {}
    for name, out in _capture(model, x, layers).items():
        score = _unit_scores(out)
        normalised = score / score.mean().clamp_min(1e-12)
        result[name] = (normalised <= tau).float().mean().item()
    return result


def _power_iteration(
    hvp: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    v: list[torch.Tensor],
    iters: int,
    tol: float,
) -> float:
    eigenvalue = 0.0
    for _ in range(iters):
        hv = hvp(v)
        new_eigenvalue = sum((a * b).sum() for a, b in zip(hv, v)).item()
        norm = torch.sqrt(sum((t * t).sum() for t in hv))
        if norm.item() == 0.0:
            return 0.0
        v = [t.detach() / norm for t in hv]
        converged = abs(new_eigenvalue - eigenvalue) <= tol * max(abs(new_eigenvalue), 1e-12)
        eigenvalue = new_eigenvalue
        if converged:
            break
    return eigenvalue


def hessian_top_eigenvalue(
    loss_fn: Callable[[], torch.Tensor],
    params: Iterable[torch.Tensor],
    iters: int = 100,
    tol: float = 1e-6,
    generator: torch.Generator | None = None,
) -> float:
    """Largest eigenvalue λ_max of ∇²L at ``params``, by power iteration on H·v products.

    Power iteration finds the eigenvalue of largest magnitude; when that one is negative, a second
    run on H − λ·I (whose largest-magnitude eigenvalue is λ_max − λ) recovers λ_max.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("hessian_top_eigenvalue: no parameters that require grad")
    if iters < 1:
        raise ValueError(f"hessian_top_eigenvalue: iters must be >= 1, got {iters}")
    grads = torch.autograd.grad(loss_fn(), params, create_graph=True)

    def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True))

    def random_unit() -> list[torch.Tensor]:
        v = [torch.randn(p.shape, device=p.device, dtype=p.dtype, generator=generator) for p in params]
        norm = torch.sqrt(sum((t * t).sum() for t in v))
        return [t / norm for t in v]

    dominant = _power_iteration(hvp, random_unit(), iters, tol)
    if dominant >= 0:
        return dominant

    def shifted_hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
        return [h - dominant * t for h, t in zip(hvp(v), v)]

    return _power_iteration(shifted_hvp, random_unit(), iters, tol) + dominant


def _singular_values(features: torch.Tensor) -> torch.Tensor:
    if features.dim() != 2:
        raise ValueError(f"features must be a (batch, dim) matrix, got shape {tuple(features.shape)}")
    return torch.linalg.svdvals(features.detach().double())


def srank(features: torch.Tensor, delta: float = 0.01) -> int:
    """Smallest k whose top-k singular values hold a (1 − δ) share of their sum (Kumar et al.)."""
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"srank: delta must be in [0, 1), got {delta!r}")
    s = _singular_values(features)
    total = s.sum()
    if total == 0:
        return 0
    cumulative = torch.cumsum(s, 0) / total
    threshold = torch.tensor(1.0 - delta, dtype=s.dtype, device=s.device)
    return int(torch.searchsorted(cumulative, threshold).item()) + 1


def effective_rank(features: torch.Tensor) -> float:
    """exp of the entropy of the normalised singular values (Roy & Vetterli, 2007)."""
    s = _singular_values(features)
    p = s / s.sum().clamp_min(1e-300)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()).item())


def weight_norm(params: nn.Module | Iterable[torch.Tensor]) -> float:
    """L2 norm of all parameters together."""
    tensors = params.parameters() if isinstance(params, nn.Module) else params
    return float(torch.sqrt(sum(p.detach().double().pow(2).sum() for p in tensors)).item())


def grad_norm(params: nn.Module | Iterable[torch.Tensor]) -> float:
    """L2 norm of all gradients together (parameters without a gradient are skipped)."""
    tensors = params.parameters() if isinstance(params, nn.Module) else params
    squares = [p.grad.detach().double().pow(2).sum() for p in tensors if p.grad is not None]
    return float(torch.sqrt(sum(squares)).item()) if squares else 0.0
