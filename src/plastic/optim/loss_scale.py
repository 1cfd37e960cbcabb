"""Dynamic loss scaling for fp16 training (Micikevicius et al., 2018), written for two-pass updates.

torch's ``GradScaler`` unscales an optimizer's gradients once per step, which does not fit SAM's
two backward passes (the clean gradient sets the perturbation; the perturbed one, or their sum, is
the step). This scaler leaves the order to the caller: multiply each loss by ``scale`` before its
backward, ``unscale_`` the gradients that backward produced, and report once per update whether
the final gradients were finite. A non-finite update is skipped by the caller and halves the
scale; ``growth_interval`` finite updates in a row double it.
"""

from __future__ import annotations

from typing import Any

import torch


class DynamicLossScale:
    def __init__(self, init_scale: float = 2.0**16, growth_interval: int = 2000,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5) -> None:
        if init_scale <= 0 or growth_interval < 1 or growth_factor <= 1 or not 0 < backoff_factor < 1:
            raise ValueError("DynamicLossScale: need init_scale > 0, growth_interval >= 1, "
                             "growth_factor > 1 and 0 < backoff_factor < 1")
        self.scale = float(init_scale)
        self.growth_interval, self.growth_factor, self.backoff_factor = \
            growth_interval, growth_factor, backoff_factor
        self.finite_in_a_row = 0
        self.skipped = 0

    @torch.no_grad()
    def unscale_(self, grads: list[torch.Tensor]) -> None:
        if grads:
            torch._foreach_mul_(grads, 1.0 / self.scale)

    def update(self, finite: bool) -> None:
        """After an update's gradients were checked: back off (and count a skip) or grow."""
        if not finite:
            self.scale *= self.backoff_factor
            self.finite_in_a_row = 0
            self.skipped += 1
            return
        self.finite_in_a_row += 1
        if self.finite_in_a_row == self.growth_interval:
            self.scale *= self.growth_factor
            self.finite_in_a_row = 0

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "finite_in_a_row": self.finite_in_a_row, "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale, self.finite_in_a_row, self.skipped = \
            float(state["scale"]), int(state["finite_in_a_row"]), int(state["skipped"])
