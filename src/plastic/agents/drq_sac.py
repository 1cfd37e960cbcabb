"""DrQ (Kostrikov et al., 2021): SAC from pixels with random-shift augmentation, as PLASTIC ran it on
DeepMind Control, with every PLASTIC switch.

One update, in the order of the PLASTIC authors' code (jaxrl's DrQ):

1. Random-shift s and s′ independently (pixels only).
2. Critic target y = r + discount·(min(Q1′, Q2′)(s′, a′) − α·log π(a′|s′)), a′ ~ π(·|s′), with the
   target critic (its own EMA encoder) and the replay's discount (γⁿ, or 0 after a terminal).
3. Critic step on (Q1 − y)² + (Q2 − y)²; with SAM, the encoder takes the gradient at the perturbed
   point and the head its clean gradient.
4. Target EMA of the whole critic, encoder included: target ← (1 − τ)·target + τ·critic.
5. Actor step on α·log π(a|s) − min(Q1, Q2)(s, a) through the updated critic; the actor reads the
   critic encoder's features detached, so only its own projection and MLP learn from it.
6. Temperature step on α·(H − H_target), H the actor step's entropy estimate.

PLASTIC's switches: LayerNorm after each encoder conv, CReLU in the actor and critic MLPs (both
placements are knobs: ``network.layer_norm_scope``, ``network.crelu_scope``), SAM on the encoder
only, and a Reset of everything but the encoder (actor, critic heads in the online and target
critics, log α; their optimizer state cleared) when the training loop calls ``reset`` (every
``reset.interval`` updates, or loop steps under the ``authors`` profile: ``plastic.reset.ResetSchedule``).

The losses and the target are the functions at the top of this file (``soft_q_target``,
``critic_loss``, ``actor_loss``, ``temperature_loss``); ``DrQSACAgent.update`` below follows the
steps above with them.

The authors' code differs from the paper's statement in a few knobs, which fidelity "authors"
sets: flax's SAME conv padding (``sac.conv_padding``), gain 1 for the log-std layer's init
(``sac.log_std_gain``), CReLU in every DrQ network (``network.crelu``), and SAM's ρ-ball over the
whole critic with the head stepped by its clean gradient (``sam.exclusion`` "authors-dmc").
``tests/golden/test_dmc.py`` checks one update against their JAX learner, fed the same draws
(``SACUpdateRandomness``).
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from plastic.agents.augment import draw_shifts, shift_images
from plastic.agents.cuda_graph import GraphedStep, check_graph_device
from plastic.configs.schema import RANGES, SACConfig  # SACConfig: the config's ``sac`` section
from plastic.nn.sac_networks import (
    Actor,
    Critic,
    CriticHead,
    CriticQ1Probe,
    make_sac_encoder,
    output_size,
    parse_channels,
    squashed_gaussian_sample,
)
from plastic.optim.sam import SAM, scoped_param_groups
from plastic.optim.sam import SCOPES as SAM_SCOPES
from plastic.replay.buffer import Batch
from plastic.reset import reset_

__all__ = ["DrQSACAgent", "SACConfig", "SACUpdateRandomness", "validate_sac_config"]

RESET_SCOPES = ("head", "all")


# ----------------------------------------------------------------------------- the update's math
def soft_q_target(reward: torch.Tensor, discount: torch.Tensor, next_q1: torch.Tensor,
                  next_q2: torch.Tensor, next_log_prob: torch.Tensor,
                  alpha: torch.Tensor) -> torch.Tensor:
    """y = r + discount·(min(Q1′, Q2′)(s′, a′) − α·log π(a′|s′)), the target critic's Q′."""
    soft_value = torch.min(next_q1, next_q2) - alpha * next_log_prob
    return reward + discount * soft_value


def critic_loss(q1: torch.Tensor, q2: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor) -> torch.Tensor:
    """The weighted mean of (Q1 − y)² + (Q2 − y)²."""
    return (weight * ((q1 - target).pow(2) + (q2 - target).pow(2))).mean()


def actor_loss(log_prob: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor,
               alpha: torch.Tensor) -> torch.Tensor:
    """The mean of α·log π(a|s) − min(Q1, Q2)(s, a), a ~ π(·|s)."""
    return (alpha * log_prob - torch.min(q1, q2)).mean()


def temperature_loss(log_alpha: torch.Tensor, entropy: torch.Tensor,
                     target_entropy: float) -> torch.Tensor:
    """α·(H − H_target): lowers α while the policy's entropy H is above the target."""
    return log_alpha.exp() * (entropy - target_entropy)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def validate_sac_config(sac: SACConfig) -> None:
    """Raise ``ValueError`` naming the first bad setting (the ranges of ``Config.validate``)."""
    for key, valid in RANGES.items():
        section, _, name = key.partition(".")
        if section == "sac" and getattr(sac, name) not in valid:
            raise ValueError(f"{key} = {getattr(sac, name)!r} is out of range; valid: {valid}")
    parse_channels(sac.encoder_channels)


@dataclass
class SACUpdateRandomness:
    """The random draws of one update, so that another implementation can be fed the same ones.

    Shifts are per-sample crop offsets (row, column) in [0, 2·pad] of the replicate-padded image;
    noises are the standard normal ε of the reparameterised samples a = tanh(mean + std·ε), shape
    (B, |A|): a′ for the critic target, a for the actor loss. ``None``: drawn where used.
    """

    obs_shift: torch.Tensor | None = None
    next_obs_shift: torch.Tensor | None = None
    next_action_noise: torch.Tensor | None = None
    action_noise: torch.Tensor | None = None


class DrQSACAgent:
    """Networks, optimizers and the update; knows nothing of environments or the training loop.

    Randomness (initialisation, augmentation, action sampling) comes from torch's global
    generator, which the training loop seeds and checkpoints, unless an update is handed its
    draws (``SACUpdateRandomness``).
    """

    def __init__(self, config: Any, obs_shape: tuple[int, ...], action_dim: int,
                 device: torch.device) -> None:
        sac = config.sac
        validate_sac_config(sac)
        _check(config.sam.scope in SAM_SCOPES,
               f"unknown sam.scope {config.sam.scope!r}; valid: {', '.join(SAM_SCOPES)}")
        reset_scope = getattr(config.reset, "scope", "head")
        _check(reset_scope in RESET_SCOPES,
               f"unknown reset.scope {reset_scope!r}; valid: {', '.join(RESET_SCOPES)}")
        _check(action_dim >= 1, f"action_dim must be >= 1, got {action_dim!r}")
        self.config, self.device = config, device
        # train.cuda_graph: one recorded update per path (whether the target and the actor are
        # stepped, by ``sac.*_update_every``), recorded again after a Reset or a loaded checkpoint
        if config.train.cuda_graph:
            check_graph_device(device)
        self._graphs: dict[tuple[bool, bool], GraphedStep] | None = {} if config.train.cuda_graph else None
        self._new_graph = GraphedStep
        self.obs_shape, self.action_dim = tuple(obs_shape), action_dim
        self.pixels = len(self.obs_shape) == 3
        net = config.network

        encoder = make_sac_encoder(
            self.obs_shape, channels=parse_channels(sac.encoder_channels),
            layer_norm=net.layer_norm_in("encoder"), crelu=net.crelu_in("encoder"),
            state_hidden=sac.state_encoder_hidden, state_layers=sac.state_encoder_layers,
            conv_padding=sac.conv_padding,
        )
        feature_dim = output_size(encoder, self.obs_shape)
        mlp = dict(latent_dim=sac.latent_dim, hidden=sac.hidden, layers=sac.hidden_layers,
                   crelu=net.crelu_in("head"), layer_norm=net.layer_norm_in("head"))
        self.critic = Critic(encoder, CriticHead(feature_dim, action_dim, **mlp)).to(device)
        if self.pixels:
            self.critic.to(memory_format=torch.channels_last)
        self.target_critic = copy.deepcopy(self.critic)
        for p in self.target_critic.parameters():
            p.requires_grad_(False)
        self.actor = Actor(feature_dim, action_dim, log_std_min=sac.log_std_min,
                           log_std_max=sac.log_std_max, log_std_gain=sac.log_std_gain, **mlp).to(device)
        self.log_alpha = torch.tensor(math.log(sac.init_temperature), device=device, requires_grad=True)
        self.target_entropy = sac.target_entropy_per_dim * action_dim

        adam = dict(eps=sac.adam_eps, **self._capturable())
        self.critic_optimizer = self._make_critic_optimizer()
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=sac.actor_lr, **adam)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=sac.alpha_lr, **adam)
        self._critic_probe = CriticQ1Probe(self.critic.head, self.actor)
        self.updates = 0

    def _capturable(self) -> dict[str, bool]:
        # under train.cuda_graph Adam keeps its step counts on the GPU, inside the graph
        return {"capturable": True} if self._graphs is not None else {}

    def _make_critic_optimizer(self) -> torch.optim.Optimizer:
        sac, sam = self.config.sac, self.config.sam
        kwargs = dict(lr=sac.critic_lr, eps=sac.adam_eps, **self._capturable())
        if not sam.enabled:
            return torch.optim.Adam(self.critic.parameters(), **kwargs)
        encoder_params = list(self.critic.encoder.parameters())
        if sam.scope == "encoder" and not encoder_params:
            raise ValueError(
                "SAM on the encoder, but the encoder has no parameters (state observations with "
                "sac.state_encoder_layers=0); give it layers, or set sam.scope to 'head' or 'all'"
            )
        groups = scoped_param_groups(encoder_params, self.critic.head.parameters(), sam.scope)
        return SAM(groups, torch.optim.Adam, rho=sam.rho, adaptive=sam.adaptive,
                   exclusion=getattr(sam, "exclusion", "clean"), **kwargs)

    # -------------------------------------------------------------------------------- acting
    def to_input(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Observations as float network input on the agent's device (not augmented)."""
        x = torch.as_tensor(obs, device=self.device)
        return x.float().div(self.config.network.input_scale)

    @torch.no_grad()
    def act(self, obs: np.ndarray, *, evaluate: bool = False) -> np.ndarray:
        """Actions in [-1, 1] for a batch (B, *obs_shape): tanh(mean) when evaluating, else a sample."""
        if tuple(obs.shape[1:]) != self.obs_shape:
            raise ValueError(
                f"act expects observations of shape (B, {', '.join(map(str, self.obs_shape))}), "
                f"got {tuple(obs.shape)}"
            )
        mean, log_std = self.actor(self.critic.encoder(self.to_input(obs)))
        action = torch.tanh(mean) if evaluate else squashed_gaussian_sample(mean, log_std)[0]
        return action.float().cpu().numpy()

    # -------------------------------------------------------------------------------- update
    def batch_tensors(self, batch: Batch,
                      randomness: SACUpdateRandomness | None = None) -> dict[str, torch.Tensor]:
        """The batch on the device; s and s′ scaled and (pixels, ``sac.augment``) random-shifted,
        by the given shifts or by fresh draws."""
        return self._prepare(self._stage(batch), randomness or SACUpdateRandomness())

    def _stage(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The replay's numpy batch on the agent's device, as stored."""
        def put(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array).to(self.device, non_blocking=True)

        return {"obs": put(batch.obs), "next_obs": put(batch.next_obs),
                "action": put(batch.action).float(), "reward": put(batch.reward).float(),
                "discount": put(batch.discount).float(), "weight": put(batch.weight).float()}

    def _prepare(self, staged: dict[str, torch.Tensor], r: SACUpdateRandomness) -> dict[str, torch.Tensor]:
        """Scaled and augmented s and s′ beside the staged batch's other tensors."""
        sac = self.config.sac
        obs, next_obs = self.to_input(staged["obs"]), self.to_input(staged["next_obs"])
        if self.pixels and sac.augment and sac.shift_pad > 0:
            obs = self._shift(obs, r.obs_shift)
            next_obs = self._shift(next_obs, r.next_obs_shift)
        return {**staged, "obs": obs, "next_obs": next_obs}

    def draw_randomness(self, batch_size: int) -> SACUpdateRandomness:
        """Every random draw of one update, on the agent's device (the graphed update takes them
        as inputs: a replay cannot draw)."""
        sac, shifts = self.config.sac, None
        if self.pixels and sac.augment and sac.shift_pad > 0:
            shifts = draw_shifts(2 * batch_size, sac.shift_pad, self.device)
        noise = torch.randn(2, batch_size, self.action_dim, device=self.device)
        return SACUpdateRandomness(
            obs_shift=None if shifts is None else shifts[:batch_size],
            next_obs_shift=None if shifts is None else shifts[batch_size:],
            next_action_noise=noise[0], action_noise=noise[1])

    def _shift(self, x: torch.Tensor, offsets: torch.Tensor | None) -> torch.Tensor:
        pad = self.config.sac.shift_pad
        if offsets is None:
            offsets = draw_shifts(x.shape[0], pad, x.device)
        return shift_images(x, offsets.to(x.device), pad)

    @torch.no_grad()
    def critic_target(self, t: dict[str, torch.Tensor], noise: torch.Tensor | None = None) -> torch.Tensor:
        """y = r + discount·(min(Q1′, Q2′)(s′, a′) − α·log π(a′|s′)), a′ ~ π(·|s′) (by ``noise``
        if given), target critic."""
        mean, log_std = self.actor(self.critic.encoder(t["next_obs"]))
        next_action, next_log_prob = squashed_gaussian_sample(mean, log_std, noise)
        q1, q2 = self.target_critic(t["next_obs"], next_action)
        return soft_q_target(t["reward"], t["discount"], q1, q2, next_log_prob, self.log_alpha.exp())

    def _critic_loss(self, t: dict[str, torch.Tensor], target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q1, q2 = self.critic(t["obs"], t["action"])
        return critic_loss(q1, q2, target, t["weight"]), q1, q2

    def _update_critic(self, t: dict[str, torch.Tensor],
                       noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        target = self.critic_target(t, noise)
        optimizer = self.critic_optimizer
        optimizer.zero_grad(set_to_none=True)
        loss, q1, q2 = self._critic_loss(t, target)
        loss.backward()
        stats: dict[str, torch.Tensor] = {}
        if isinstance(optimizer, SAM):
            stats["grad_norm_clean"] = _grad_norm(self.critic.parameters())
            with optimizer.perturbed():
                perturbed_loss, _, _ = self._critic_loss(t, target)
                perturbed_loss.backward()
            stats["loss_perturbed"] = perturbed_loss.detach()
        stats["grad_norm"] = self._clip(self.critic.parameters())
        optimizer.second_step() if isinstance(optimizer, SAM) else optimizer.step()
        with torch.no_grad():
            q_mean = 0.5 * (q1.mean() + q2.mean())
        stats.update(critic_loss=loss.detach(), q_mean=q_mean, target_q_mean=target.mean())
        return stats

    def _update_actor_and_alpha(self, obs: torch.Tensor,
                                noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            features = self.critic.encoder(obs)
        mean, log_std = self.actor(features)
        action, log_prob = squashed_gaussian_sample(mean, log_std, noise)
        q1, q2 = self.critic.head(features, action)
        policy_loss = actor_loss(log_prob, q1, q2, self.log_alpha.detach().exp())
        self.actor_optimizer.zero_grad(set_to_none=True)
        policy_loss.backward(inputs=list(self.actor.parameters()))  # the critic gets no gradient
        actor_grad_norm = self._clip(self.actor.parameters())
        self.actor_optimizer.step()

        entropy = -log_prob.detach().mean()
        alpha_loss = temperature_loss(self.log_alpha, entropy, self.target_entropy)
        self.alpha_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_optimizer.step()
        return {"actor_loss": policy_loss.detach(), "alpha_loss": alpha_loss.detach(), "entropy": entropy,
                "actor_grad_norm": actor_grad_norm, "log_std_mean": log_std.detach().mean()}

    def _clip(self, params) -> torch.Tensor:
        params = [p for p in params if p.grad is not None]
        max_norm = self.config.sac.max_grad_norm
        if max_norm > 0:
            return nn.utils.clip_grad_norm_(params, max_norm)
        return _grad_norm(params)

    @torch.no_grad()
    def _update_target(self) -> None:
        torch._foreach_lerp_(list(self.target_critic.parameters()), list(self.critic.parameters()),
                             self.config.sac.critic_tau)

    def update(self, batch: Batch, randomness: SACUpdateRandomness | None = None) -> dict[str, Any]:
        """One SAC update. Returns detached tensors (no host sync).

        ``randomness`` (default: drawn where used, from torch's global generator; with
        ``train.cuda_graph`` all drawn first) feeds the update given augmentation shifts and
        sampling noise. Resets are not part of it: the training loop calls ``reset``.
        """
        sac, number = self.config.sac, self.updates + 1
        path = (number % sac.target_update_every == 0, number % sac.actor_update_every == 0)
        staged = self._stage(batch)
        if self._graphs is None:
            stats = self._update(staged, randomness or SACUpdateRandomness(), *path)
        else:
            r = randomness if randomness is not None else self.draw_randomness(len(batch.action))
            if path not in self._graphs:
                self._graphs[path] = self._new_graph(
                    functools.partial(self._update, update_target=path[0], update_actor=path[1]))
            stats = self._graphs[path](staged, r)
        stats["alpha"] = self.log_alpha.detach().exp()
        self.updates = number
        return stats

    def _update(self, staged: dict[str, torch.Tensor], r: SACUpdateRandomness, update_target: bool,
                update_actor: bool) -> dict[str, Any]:
        """The update's tensor work (``update``): no host sync."""
        t = self._prepare(staged, r)
        stats: dict[str, Any] = self._update_critic(t, r.next_action_noise)
        if update_target:
            self._update_target()
        if update_actor:
            stats.update(self._update_actor_and_alpha(t["obs"], r.action_noise))
        return stats

    # --------------------------------------------------------------------------------- reset
    def reset(self, *, encoder_shrink: float | None = None) -> list[str]:
        """A Reset, now, of everything but the encoder (``reset.scope`` "all": the encoder too).

        The critic heads of the online and target critics get the same fresh values, the actor
        is re-initialised, log α goes back to log(init_temperature), and the optimizer state of
        exactly those parameters is cleared. Returns the names of the touched parameters.
        ``encoder_shrink`` is not used: PLASTIC's DMC Reset (the authors' code) leaves the
        encoder as it is at every replay ratio.
        """
        cfg = self.config.reset
        target = self.target_critic if cfg.reset_target else None
        names = [""] if getattr(cfg, "scope", "head") == "all" else ["head"]
        touched = [f"critic.{n}" for n in
                   reset_(self.critic, names, target=target, optimizer=self.critic_optimizer)]
        touched += [f"actor.{n}" for n in reset_(self.actor, [""], optimizer=self.actor_optimizer)]
        with torch.no_grad():
            self.log_alpha.fill_(math.log(self.config.sac.init_temperature))
        self.alpha_optimizer.state.pop(self.log_alpha, None)
        self._forget_graphs()  # the cleared optimizer state is new tensors: record again
        return [*touched, "log_alpha"]

    def _forget_graphs(self) -> None:
        if self._graphs is not None:
            self._graphs.clear()

    # ---------------------------------------------------------------------------- interfaces
    def networks(self) -> dict[str, nn.Module]:
        """The modules to save; ``critic.encoder`` is the encoder the actor shares."""
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.target_critic}

    def plasticity_modules(self) -> tuple[nn.Module, dict[str, nn.Module]]:
        """(encoder, heads that take the encoder's features) for active/dormant-unit metrics.

        "critic" is Q1's path (projection and MLP) at the policy's mean action.
        """
        return self.critic.encoder, {"actor": self.actor, "critic": self._critic_probe}

    # ---------------------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {
            "critic": self.critic.state_dict(), "target_critic": self.target_critic.state_dict(),
            "actor": self.actor.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(), "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        self.actor.load_state_dict(state["actor"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.updates = state["updates"]
        self._forget_graphs()


def _grad_norm(params) -> torch.Tensor:
    params = list(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:  # on the parameters' device, like every other statistic of the update
        return torch.zeros((), device=params[0].device if params else None)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
