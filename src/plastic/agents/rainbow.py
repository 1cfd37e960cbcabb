"""The DrQ(ε)-style Rainbow agent of PLASTIC's Atari experiments, with every PLASTIC switch.

C51 (Bellemare et al., 2017) with a dueling noisy head, double Q, n-step returns, prioritized
replay, an EMA target network that also acts, random-shift + intensity augmentation of s and s′.
PLASTIC's components are flags in the config: LayerNorm in the encoder, CReLU in the head, SAM
on the encoder (the head takes the clean gradient), and a periodic Reset of the head.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plastic.agents.augment import augment
from plastic.agents.distributional import project_distribution
from plastic.configs.schema import Config
from plastic.nn.networks import DistributionalHead, QNetwork, encoder_output_size, make_encoder
from plastic.optim.sam import SAM
from plastic.replay.buffer import Batch
from plastic.reset import reset_


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N")
    return torch.device(device)


def build_q_network(config: Config, obs_shape: tuple[int, ...], num_actions: int) -> QNetwork:
    net_cfg = config.network
    encoder = make_encoder(net_cfg.encoder, obs_shape[0], net_cfg.layer_norm)
    head = DistributionalHead(
        encoder_output_size(encoder, obs_shape), num_actions, net_cfg.num_atoms,
        hidden=net_cfg.hidden, dueling=net_cfg.dueling, noisy=net_cfg.noisy,
        crelu=net_cfg.crelu, noisy_std=net_cfg.noisy_std,
    )
    return QNetwork(encoder, head)


class RainbowAgent:
    """Networks, optimizer and the update; knows nothing of environments or the training loop."""

    def __init__(self, config: Config, obs_shape: tuple[int, ...], num_actions: int,
                 device: torch.device) -> None:
        self.config, self.device, self.num_actions = config, device, num_actions
        self.online = build_q_network(config, obs_shape, num_actions).to(device)
        self.target = copy.deepcopy(self.online)
        for p in self.target.parameters():
            p.requires_grad_(False)
        net = config.network
        self.support = torch.linspace(net.v_min, net.v_max, net.num_atoms, device=device)
        self.optimizer = self._make_optimizer()
        self.updates = 0
        self.rng = np.random.default_rng(config.seed + 1)

    # ----------------------------------------------------------------------------- optimizer
    def _make_optimizer(self) -> torch.optim.Optimizer:
        agent, sam = self.config.agent, self.config.sam
        kwargs = dict(lr=agent.lr, eps=agent.adam_eps)
        if not sam.enabled:
            return torch.optim.Adam(self.online.parameters(), **kwargs)
        groups = [
            {"params": list(self.online.encoder.parameters()),
             "sam": sam.scope in ("encoder", "all")},
            {"params": list(self.online.head.parameters()), "sam": sam.scope in ("head", "all")},
        ]
        return SAM(groups, torch.optim.Adam, rho=sam.rho, adaptive=sam.adaptive,
                   exclusion=sam.exclusion, **kwargs)

    # -------------------------------------------------------------------------------- acting
    def _to_input(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float().div_(self.config.network.input_scale)

    @torch.no_grad()
    def q_values(self, obs: np.ndarray, *, network: nn.Module, noise: bool) -> torch.Tensor:
        x = self._to_input(torch.as_tensor(obs, device=self.device))
        was_training = network.training
        network.train(noise)
        try:
            probs = F.softmax(network(x), dim=-1)
        finally:
            network.train(was_training)
        return (probs * self.support).sum(-1)

    def act(self, obs: np.ndarray, *, evaluate: bool = False) -> np.ndarray:
        """Actions for a batch of observations (uint8, (B, *obs_shape)); ε-greedy on Q."""
        agent = self.config.agent
        network = self.target if agent.act_with_target else self.online
        q = self.q_values(obs, network=network, noise=not evaluate)
        actions = q.argmax(dim=1).cpu().numpy()
        epsilon = agent.eval_epsilon if evaluate else agent.train_epsilon
        if epsilon > 0:
            explore = self.rng.random(len(actions)) < epsilon
            actions[explore] = self.rng.integers(self.num_actions, size=int(explore.sum()))
        return actions

    # -------------------------------------------------------------------------------- update
    def _batch_tensors(self, batch: Batch) -> dict[str, torch.Tensor]:
        def put(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array).to(self.device, non_blocking=True)

        agent = self.config.agent
        obs, next_obs = self._to_input(put(batch.obs)), self._to_input(put(batch.next_obs))
        if agent.augment:
            obs = augment(obs, agent.shift_pad, agent.intensity_scale)
            next_obs = augment(next_obs, agent.shift_pad, agent.intensity_scale)
        return {
            "obs": obs, "next_obs": next_obs, "action": put(batch.action).long(),
            "reward": put(batch.reward), "discount": put(batch.discount), "weight": put(batch.weight),
        }

    @torch.no_grad()
    def _target_distribution(self, t: dict[str, torch.Tensor]) -> torch.Tensor:
        next_probs = F.softmax(self.target(t["next_obs"]), dim=-1)  # (B, A, N)
        selector = F.softmax(self.online(t["next_obs"]), dim=-1) if self.config.agent.double_q \
            else next_probs
        next_action = (selector * self.support).sum(-1).argmax(dim=1)
        chosen = next_probs[torch.arange(len(next_action), device=self.device), next_action]
        return project_distribution(chosen, t["reward"], t["discount"], self.support)

    def _loss(self, t: dict[str, torch.Tensor], target_dist: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.online(t["obs"])
        chosen = logits[torch.arange(len(logits), device=self.device), t["action"]]
        per_sample = -(target_dist * F.log_softmax(chosen, dim=-1)).sum(-1)
        return (t["weight"] * per_sample).mean(), per_sample, logits

    def update(self, batch: Batch) -> dict[str, Any]:
        """One gradient update. Returns tensors (no host sync) and the priorities for the replay."""
        agent, sam = self.config.agent, self.config.sam
        self.online.reset_noise()
        self.target.reset_noise()
        t = self._batch_tensors(batch)
        target_dist = self._target_distribution(t)

        self.optimizer.zero_grad(set_to_none=True)
        loss, per_sample, logits = self._loss(t, target_dist)
        loss.backward()
        stats: dict[str, Any] = {}
        if isinstance(self.optimizer, SAM):
            stats["grad_norm_clean"] = _grad_norm(self.online.parameters())
            self.optimizer.first_step(zero_grad=True)
            if sam.resample_noise:
                self.online.reset_noise()
            perturbed_loss, _, _ = self._loss(t, target_dist)
            perturbed_loss.backward()
            stats["loss_perturbed"] = perturbed_loss.detach()
            self.optimizer.restore()
        stats["grad_norm"] = nn.utils.clip_grad_norm_(self.online.parameters(), agent.max_grad_norm)
        self.optimizer.step() if not isinstance(self.optimizer, SAM) else self.optimizer.second_step()
        self._update_target()
        self.updates += 1
        stats["reset"] = self._maybe_reset()

        with torch.no_grad():
            q = (F.softmax(logits.detach(), dim=-1) * self.support).sum(-1)
        stats.update(loss=loss.detach(), q_mean=q.mean(), priority=per_sample.detach())
        return stats

    @torch.no_grad()
    def _update_target(self) -> None:
        weight = 1.0 - self.config.agent.target_ema
        torch._foreach_lerp_(list(self.target.parameters()), list(self.online.parameters()), weight)

    # --------------------------------------------------------------------------------- reset
    def reset_due(self) -> bool:
        cfg = self.config.reset
        return cfg.enabled and self.updates > 0 and self.updates % cfg.interval == 0

    def _maybe_reset(self) -> bool:
        if not self.reset_due():
            return False
        cfg = self.config.reset
        target = self.target if cfg.reset_target else None
        if cfg.scope == "all":
            reset_(self.online, [""], target=target, optimizer=self.optimizer)
            return True
        reset_(self.online, ["head"], target=target, optimizer=self.optimizer)
        if self.config.train.replay_ratio >= cfg.encoder_shrink_min_replay_ratio:
            reset_(self.online, ["encoder"], target=target, optimizer=self.optimizer,
                   shrink=cfg.encoder_shrink)
        return True

    # ---------------------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {
            "online": self.online.state_dict(), "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(), "updates": self.updates,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = state["updates"]
        self.rng.bit_generator.state = state["rng"]


def _grad_norm(params) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
