"""What the training loop (and evaluation, checkpoints, plasticity metrics) uses of an agent.

``RainbowAgent`` (Atari, MinAtar) and ``DrQSACAgent`` (DeepMind Control) both implement ``Agent``;
the loop knows nothing else of them. When a Reset happens is the loop's business
(``plastic.reset.ResetSchedule``); what it does is the agent's (``Agent.reset``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # torch stays unimported until an agent is built (``plastic --help``)
    import numpy as np
    import torch
    from torch import nn

    from plastic.replay.buffer import Batch


@runtime_checkable
class Agent(Protocol):
    updates: int  # gradient updates done so far (part of ``state_dict``)

    def act(self, obs: np.ndarray, *, evaluate: bool = False) -> np.ndarray:
        """Actions for a batch of observations (B, *obs_shape): exploring, or for evaluation."""
        ...

    def update(self, batch: Batch) -> dict[str, Any]:
        """One gradient update; returns its statistics as tensors (no host sync), with the
        per-sample ``"priority"`` (B,) where the replay is prioritized. Never resets."""
        ...

    def reset(self, *, encoder_shrink: float | None = None) -> list[str]:
        """Perform a Reset now. ``encoder_shrink`` (the schedule's): also shrink-and-perturb the
        encoder by it, where the agent's recipe has that (None: leave the encoder). Returns the
        dotted names of the parameters it changed."""
        ...

    def networks(self) -> dict[str, nn.Module]:
        """The modules a finished run keeps (``final_model.pt``), by name."""
        ...

    def plasticity_modules(self) -> tuple[nn.Module, dict[str, nn.Module]]:
        """(encoder, {name: module fed with the encoder's features}) for the plasticity metrics."""
        ...

    def state_dict(self) -> dict[str, Any]:
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...


def network_states(agent: Agent) -> dict[str, dict[str, torch.Tensor]]:
    """The state dicts of ``agent.networks()``, by name: what ``final_model.pt`` holds."""
    return {name: module.state_dict() for name, module in agent.networks().items()}
