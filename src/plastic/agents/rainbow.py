"""The DrQ(ε)-style Rainbow agent of PLASTIC's Atari experiments, with every PLASTIC switch.

C51 (Bellemare et al., 2017) with a dueling noisy head, double Q, n-step returns, prioritized
replay, an EMA target network that also acts, random-shift + intensity augmentation of s and s′.
PLASTIC's components are flags in the config: LayerNorm in the encoder, CReLU in the head (both
placements are knobs: ``network.layer_norm_scope``, ``network.crelu_scope``), SAM on the encoder
(the head takes the clean gradient), and a Reset of the head (and, at high replay ratios, a
shrink-and-perturb of the encoder) when the training loop calls ``reset``.

One update (``RainbowAgent.update``), top to bottom in this file: the math at the top
(``distributional_target``, ``cross_entropy_loss``, ``clip_coefficient``), then the agent's
``update``: load the noise, augment s and s′, the target distribution, the loss and its backward,
SAM's perturbed pass (``_sam_second_pass``), clipping, the optimizer step, the target's EMA.
"""

from __future__ import annotations

import copy
import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plastic import runtime
from plastic.agents.augment import draw_intensities, draw_shifts, shift_images
from plastic.agents.cuda_graph import GraphedStep, check_graph_device
from plastic.agents.distributional import project_distribution
from plastic.configs.schema import Config
from plastic.nn import networks
from plastic.nn.layers import LayerNorm2d, NoisyLinear
from plastic.nn.networks import (
    DistributionalHead,
    LinearParameters,
    QNetwork,
    encoder_output_size,
    make_encoder,
)
from plastic.optim.loss_scale import DynamicLossScale
from plastic.optim.sam import SAM, scoped_param_groups
from plastic.replay.buffer import Batch
from plastic.reset import reset_

NoiseDraw = dict[str, tuple[torch.Tensor, torch.Tensor]]  # noisy layer name -> (f(ε_in), f(ε_out))


# ----------------------------------------------------------------------------- the update's math
def expected_q(logits: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Q = Σ_i p_i·z_i of (..., N) atom logits on ``support``."""
    return F.softmax(logits, dim=-1) @ support


def pick_action(logits: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """The (B, N) rows of (B, A, N) ``logits`` at each sample's action."""
    index = action.view(-1, 1, 1).expand(-1, 1, logits.shape[-1])
    return logits.gather(1, index).squeeze(1)


def distributional_target(target_logits: torch.Tensor, selector_logits: torch.Tensor,
                          reward: torch.Tensor, discount: torch.Tensor,
                          support: torch.Tensor) -> torch.Tensor:
    """The C51 target at s′: the target network's distribution (``target_logits``, (B, A, N)) at
    the action greedy under ``selector_logits`` (the online network's: double Q; else the target
    network's own), of ``reward + discount·Z`` projected onto ``support``; (B, N)."""
    next_action = expected_q(selector_logits, support).argmax(dim=1)
    chosen = pick_action(target_logits, next_action)
    return project_distribution(F.softmax(chosen, dim=-1), reward, discount, support)


def cross_entropy_loss(logits: torch.Tensor, action: torch.Tensor, target_dist: torch.Tensor,
                       weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the importance-weighted mean, the per-sample cross-entropies (B,)) of the online
    ``logits`` at the taken ``action`` against ``target_dist``."""
    per_sample = -(target_dist * F.log_softmax(pick_action(logits, action), dim=-1)).sum(-1)
    return (weight * per_sample).mean(), per_sample


def clip_coefficient(norm: torch.Tensor, max_norm: float) -> torch.Tensor:
    """What gradients of total norm ``norm`` are multiplied by (torch's clip_grad_norm_)."""
    return (max_norm / (norm + 1e-6)).clamp_(max=1.0)


@dataclass
class UpdateRandomness:
    """Every random draw of one update, so that two implementations can be fed the same ones.

    Noise is keyed by the noisy layer's name in the network (``head.advantage.0``) and holds the
    transformed factors f(ε) = sign(ε)·√|ε| of the input and output sides. Shifts are per-sample
    crop offsets in [0, 2·pad] (rows, columns) of the replicate-padded image; intensities are the
    clamped N(0, 1) draws, the image being scaled by 1 + scale·draw. ``None`` where not used.
    """

    online_noise: NoiseDraw
    target_noise: NoiseDraw
    perturbed_noise: NoiseDraw | None = None  # SAM's perturbed pass, when it resamples noise
    obs_shift: torch.Tensor | None = None
    next_obs_shift: torch.Tensor | None = None
    obs_intensity: torch.Tensor | None = None
    next_obs_intensity: torch.Tensor | None = None
    # SAM's perturbed pass with ``sam.perturbed_pass="fresh"``: its own noise for both networks
    # and its own augmentation (the authors' code runs the whole forward again).
    perturbed: UpdateRandomness | None = None


@dataclass
class DeviceBatch:
    """A replay batch on the agent's device: the uint8 frames of s and s′ stacked (2B, ...), the
    actions, n-step returns, discounts and importance weights."""

    frames: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    discount: torch.Tensor
    weight: torch.Tensor


def build_q_network(config: Config, obs_shape: tuple[int, ...], num_actions: int) -> QNetwork:
    net_cfg = config.network
    encoder = make_encoder(net_cfg.encoder, obs_shape[0], layer_norm=net_cfg.layer_norm_in("encoder"),
                           crelu=net_cfg.crelu_in("encoder"))
    head = DistributionalHead(
        encoder_output_size(encoder, obs_shape), num_actions, net_cfg.num_atoms,
        hidden=net_cfg.hidden, dueling=net_cfg.dueling, noisy=net_cfg.noisy,
        crelu=net_cfg.crelu_in("head"), layer_norm=net_cfg.layer_norm_in("head"),
        noisy_std=net_cfg.noisy_std, grad_scale=net_cfg.dueling_grad_scale,
    )
    return QNetwork(encoder, head)


def _adam_options(device: torch.device) -> dict[str, Any]:
    """Fused Adam (one pass over parameters, gradients and moments) where this torch has it."""
    try:
        torch.optim.Adam([torch.zeros(1, device=device, requires_grad=True)], fused=True)
    except (RuntimeError, TypeError, ValueError):
        return {"foreach": True}
    return {"fused": True}


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.precision`` on ``device`` (None: plain fp32).

    bf16 and fp16 run the networks' matrix products and convolutions in that type (autocast);
    parameters, gradients, optimizer state, SAM's norms and everything after the logits stay fp32
    (fp16 also scales the losses: ``DynamicLossScale``). On a CPU without native bf16
    (AVX512-BF16 or AMX) torch emulates it, slower than fp32: said once. fp16 is meant for CUDA;
    on a CPU it runs (slowly) too, which is how it is tested.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision: unknown value {precision!r}; valid: {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is torch.bfloat16 and device.type == "cpu" and not runtime.cpu_has_native_bf16():
        warnings.warn("train.precision=bf16: this CPU has no native bf16 (AVX512-BF16 or AMX); "
                      "torch emulates it, slower than fp32", RuntimeWarning, stacklevel=2)
    return dtype


def _noisy_layers(network: nn.Module) -> dict[str, NoisyLinear]:
    return {name: m for name, m in network.named_modules() if isinstance(m, NoisyLinear)}


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
        # Parameters stay the same tensors for the agent's life (reset_ and loading work in place).
        self._online_params = list(self.online.parameters())
        self._target_params = list(self.target.parameters())
        self._noisy_online, self._noisy_target = _noisy_layers(self.online), _noisy_layers(self.target)
        self._sam_recomputed = self._params_recomputed_by_sam()
        self._autocast_dtype = autocast_dtype(config.train.precision, device)
        # fp16 (its range is small): losses scaled up for backward, gradients unscaled after.
        self.loss_scale = DynamicLossScale() if config.train.precision == "fp16" else None
        self._graph: GraphedStep | None = None
        # acting on one observation (training's acting) is a few dozen kernels too: graphed per
        # (network, noise); batches of several (evaluation's, whose size varies) stay eager
        self._act_graphs: dict[tuple[bool, bool], GraphedStep] | None = None
        self._new_graph = GraphedStep
        if config.train.cuda_graph:
            check_graph_device(device)
            self._graph = GraphedStep(self._update)
            self._act_graphs = {}

    # ----------------------------------------------------------------------------- optimizer
    def _make_optimizer(self) -> torch.optim.Optimizer:
        agent, sam = self.config.agent, self.config.sam
        kwargs = dict(lr=agent.lr, eps=agent.adam_eps, **_adam_options(self.device))
        if self.config.train.cuda_graph:  # its step counts stay on the GPU, inside the graph
            kwargs["capturable"] = True
        if not sam.enabled:
            return torch.optim.Adam(self.online.parameters(), **kwargs)
        groups = scoped_param_groups(self.online.encoder.parameters(), self.online.head.parameters(),
                                     sam.scope)
        return SAM(groups, torch.optim.Adam, rho=sam.rho, adaptive=sam.adaptive,
                   exclusion=sam.exclusion, **kwargs)

    def _params_recomputed_by_sam(self) -> list[nn.Parameter]:
        """Parameters whose final gradient needs SAM's second pass (the others keep the clean one).

        Read from the optimizer's groups, whose ``"sam"`` flags a Reset may change
        (``sam.all_after_reset``) and a checkpoint restores.
        """
        if not isinstance(self.optimizer, SAM):
            return []
        if self.optimizer.exclusion == "authors":  # every parameter: perturbed, or clean + perturbed
            return list(self._online_params)
        return [p for group in self.optimizer.param_groups if group["sam"] for p in group["params"]]

    def _head_perturbed(self) -> bool:
        """Whether SAM's first step moves the head (so its noisy weights must be rebuilt)."""
        head_group = self.optimizer.param_groups[1]
        return head_group["sam"] or self.optimizer.exclusion != "clean"

    def _forward(self, network: nn.Module, x: torch.Tensor,
                 head_parameters: LinearParameters | None = None) -> torch.Tensor:
        """Logits of ``network``: its passes in ``train.precision``, the logits back in fp32 (the
        softmaxes, the projection, the loss and the priorities are computed in fp32)."""
        if self._autocast_dtype is None:
            return network(x, head_parameters)
        # A CUDA graph must not keep autocast's cast weights from its capture (they go stale).
        with torch.autocast(self.device.type, dtype=self._autocast_dtype,
                            cache_enabled=self._graph is None):
            logits = network(x, head_parameters)
        return logits.float()

    # -------------------------------------------------------------------------------- acting
    def _to_input(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float().div_(self.config.network.input_scale)

    @torch.inference_mode()
    def q_values(self, obs: np.ndarray, *, network: nn.Module, noise: bool) -> torch.Tensor:
        frames = torch.as_tensor(obs, device=self.device)
        if self._act_graphs is None or len(frames) != 1:
            return self._q_step(frames, network=network, noise=noise)["q"]
        key = (network is self.target, noise)
        if key not in self._act_graphs:
            self._act_graphs[key] = self._new_graph(
                functools.partial(self._q_step, network=network, noise=noise))
        return self._act_graphs[key](frames)["q"]

    def _q_step(self, frames: torch.Tensor, *, network: nn.Module, noise: bool) -> dict[str, torch.Tensor]:
        """Expected Q of ``network`` for uint8 ``frames``, its noisy layers on (``noise``) or off."""
        x = self._to_input(frames)
        was_training = network.training
        if was_training == noise:  # switching modes walks every module: only when needed
            return {"q": expected_q(self._forward(network, x), self.support)}
        network.train(noise)
        try:
            logits = self._forward(network, x)
        finally:
            network.train(was_training)
        return {"q": expected_q(logits, self.support)}

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

    # ------------------------------------------------------------------------ random draws
    def draw_randomness(self, batch_size: int) -> UpdateRandomness:
        """All random draws of one update, on the agent's device, in a few calls."""
        sam = self.config.sam
        extra_noise = sam.enabled and sam.resample_noise
        noise = self._draw_noise(3 if extra_noise else 2)
        randomness = UpdateRandomness(online_noise=noise[0], target_noise=noise[1],
                                      perturbed_noise=noise[2] if extra_noise else None,
                                      **self._draw_augmentation(batch_size))
        if sam.enabled and sam.perturbed_pass == "fresh":
            noise = self._draw_noise(2)
            randomness.perturbed = UpdateRandomness(online_noise=noise[0], target_noise=noise[1],
                                                    **self._draw_augmentation(batch_size))
        return randomness

    def _draw_noise(self, sets: int) -> list[NoiseDraw]:
        """``sets`` noise draws for the noisy layers, f(ε) = sign(ε)·√|ε|, from one randn call."""
        sizes = [n for m in self._noisy_online.values() for n in (m.in_features, m.out_features)]
        if not sizes:
            return [{} for _ in range(sets)]
        eps = torch.randn(sets * sum(sizes), device=self.device)
        chunks = iter(eps.sign().mul_(eps.abs().sqrt_()).split(sizes * sets))
        return [{name: (next(chunks), next(chunks)) for name in self._noisy_online}
                for _ in range(sets)]

    def _draw_augmentation(self, batch_size: int) -> dict[str, torch.Tensor | None]:
        """Shifts and intensities of s and s′ (``UpdateRandomness`` fields); None where off."""
        agent = self.config.agent
        shifts = intensities = None
        if agent.augment and agent.shift_pad > 0:
            shifts = draw_shifts(2 * batch_size, agent.shift_pad, self.device)
        if agent.augment and agent.intensity_scale > 0:
            intensities = draw_intensities(2 * batch_size, self.device)
        return dict(
            obs_shift=None if shifts is None else shifts[:batch_size],
            next_obs_shift=None if shifts is None else shifts[batch_size:],
            obs_intensity=None if intensities is None else intensities[:batch_size],
            next_obs_intensity=None if intensities is None else intensities[batch_size:],
        )

    @staticmethod
    @torch.no_grad()
    def _load_noise(layers: dict[str, NoisyLinear], noise: NoiseDraw) -> None:
        if layers:
            buffers = [b for m in layers.values() for b in (m.eps_in, m.eps_out)]
            torch._foreach_copy_(buffers, [e for name in layers for e in noise[name]])

    # -------------------------------------------------------------------------------- update
    def _stage(self, batch: Batch) -> DeviceBatch:
        """The replay's numpy batch on the agent's device."""
        frames = torch.cat([torch.from_numpy(batch.obs), torch.from_numpy(batch.next_obs)])
        return DeviceBatch(frames=frames.to(self.device, non_blocking=True),
                           action=self._tensor(batch.action).long(), reward=self._tensor(batch.reward),
                           discount=self._tensor(batch.discount), weight=self._tensor(batch.weight))

    def _inputs(self, batch: DeviceBatch, r: UpdateRandomness) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented float s and s′ in one go; frames stay uint8 until the final scaling."""
        agent, size = self.config.agent, len(batch.action)
        frames = batch.frames
        if r.obs_shift is not None:
            frames = shift_images(frames, torch.cat([r.obs_shift, r.next_obs_shift]), agent.shift_pad)
        factor: torch.Tensor | float = 1.0 / self.config.network.input_scale
        if r.obs_intensity is not None:
            draws = torch.cat([r.obs_intensity, r.next_obs_intensity])
            factor = (draws * agent.intensity_scale + 1.0).mul_(factor).view(-1, *[1] * (frames.dim() - 1))
        layout = torch.channels_last if frames.dim() == 4 and self.device.type == "cpu" \
            and networks.CHANNELS_LAST_ON_CPU else torch.contiguous_format
        # the layout changed on the uint8 frames, then one cast (a copy: the staged frames serve
        # a second pass) and an in-place scaling: the same values as a mixed-dtype multiply into a
        # channels_last output, in half its time on CPU
        x = frames.contiguous(memory_format=layout).to(torch.float32, copy=True).mul_(factor)
        if self._autocast_dtype is not None:  # cast once here, not by autocast at every pass
            x = x.to(self._autocast_dtype)
        return x[:size], x[size:]

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device, non_blocking=True)

    @torch.no_grad()
    def _target_distribution(self, next_obs: torch.Tensor, head_parameters: LinearParameters,
                             reward: torch.Tensor, discount: torch.Tensor) -> torch.Tensor:
        # in bf16/fp16 the target's noisy weights are built in that type, as the online one's are
        target_parameters = None if self._autocast_dtype is None \
            else self.target.head.linear_parameters(self._autocast_dtype)
        target_logits = self._forward(self.target, next_obs, target_parameters)  # (B, A, N)
        selector = self._forward(self.online, next_obs, head_parameters) \
            if self.config.agent.double_q else target_logits
        return distributional_target(target_logits, selector, reward, discount, self.support)

    def update(self, batch: Batch, randomness: UpdateRandomness | None = None) -> dict[str, Any]:
        """One gradient update. Returns tensors (no host sync) and the priorities for the replay.

        ``randomness`` (default: drawn here) holds the noise and augmentation draws, so that a
        reference implementation can be fed the same ones. The noisy weights of each network are
        built once and serve every pass with the same noise; SAM's second pass computes only the
        gradients it changes (the encoder's, by default); gradient norms are computed once per
        gradient. Resets are not part of it: the training loop calls ``reset``. With
        ``train.cuda_graph`` the update (everything after the draws and the batch's copy to the
        GPU) is replayed as one CUDA graph.
        """
        r = randomness if randomness is not None else self.draw_randomness(len(batch.action))
        staged = self._stage(batch)
        stats = self._update(staged, r) if self._graph is None else self._graph(staged, r)
        self.updates += 1
        return stats

    def _update(self, batch: DeviceBatch, r: UpdateRandomness) -> dict[str, Any]:
        """The update's tensor work (``update``): no host sync, the same path every time."""
        self._load_noise(self._noisy_online, r.online_noise)
        self._load_noise(self._noisy_target, r.target_noise)
        obs, next_obs = self._inputs(batch, r)
        action, weight = batch.action, batch.weight
        head_parameters = self.online.head.linear_parameters(self._autocast_dtype)  # noisy weights built once
        target_dist = self._target_distribution(next_obs, head_parameters, batch.reward, batch.discount)

        self.optimizer.zero_grad(set_to_none=True)
        logits = self._forward(self.online, obs, head_parameters)
        loss, per_sample = cross_entropy_loss(logits, action, target_dist, weight)
        self._backward(loss)
        params = [p for p in self._online_params if p.grad is not None]
        self._unscale([p.grad for p in params])
        norms = dict(zip(params, torch._foreach_norm([p.grad for p in params])))
        max_norm = self.config.agent.max_grad_norm
        stats: dict[str, Any] = {}
        priority = per_sample
        if isinstance(self.optimizer, SAM):
            sam = self.config.sam
            clean_norm = torch.linalg.vector_norm(torch.stack(list(norms.values())))
            stats["grad_norm_clean"] = clean_norm
            if sam.preclip:  # as clip_grad_norm_ before the perturbation (the authors' code)
                torch._foreach_mul_([p.grad for p in params], clip_coefficient(clean_norm, max_norm))
            stats["loss_perturbed"], perturbed_priority = self._sam_second_pass(
                batch, obs, action, target_dist, weight, head_parameters, r)
            if sam.perturbed_pass == "fresh":  # the authors write the perturbed pass's last
                priority = perturbed_priority
            changed = params if sam.preclip else self._sam_recomputed
            changed = [p for p in changed if p.grad is not None]
            norms.update(zip(changed, torch._foreach_norm([p.grad for p in changed])))
        grads = [p.grad for p in self._online_params if p.grad is not None]
        total_norm = torch.linalg.vector_norm(torch.stack([norms[p] for p in self._online_params
                                                           if p.grad is not None]))
        # As torch.nn.utils.clip_grad_norm_, reusing the norms computed above.
        torch._foreach_mul_(grads, clip_coefficient(total_norm, max_norm))
        stats["grad_norm"] = total_norm
        if self._gradients_usable(total_norm):
            self.optimizer.step() if not isinstance(self.optimizer, SAM) else self.optimizer.second_step()
        else:  # fp16 overflow: no step (SAM has restored the parameters already), and nothing of
            # a perturbed pass that may have started from an infinite gradient
            self.optimizer.zero_grad(set_to_none=True)
            priority = per_sample
            for key in ("loss_perturbed", "grad_norm", "grad_norm_clean"):  # not in the logs' means
                stats.pop(key, None)
        self._update_target()

        with torch.no_grad():
            q = expected_q(logits.detach(), self.support)
        stats.update(loss=loss.detach(), q_mean=q.mean(), priority=priority.detach())
        return stats

    def _backward(self, loss: torch.Tensor, inputs: list[nn.Parameter] | None = None) -> None:
        scaled = loss if self.loss_scale is None else loss * self.loss_scale.scale
        scaled.backward(inputs=inputs)

    def _unscale(self, grads: list[torch.Tensor]) -> None:
        if self.loss_scale is not None:
            self.loss_scale.unscale_(grads)

    def _gradients_usable(self, total_norm: torch.Tensor) -> bool:
        """fp16: whether the final gradients are finite (else the update is skipped and the loss
        scale backs off); always True otherwise (no host sync)."""
        if self.loss_scale is None:
            return True
        finite = bool(torch.isfinite(total_norm))
        self.loss_scale.update(finite)
        return finite

    def _sam_second_pass(self, batch: DeviceBatch, obs: torch.Tensor, action: torch.Tensor,
                         target_dist: torch.Tensor, weight: torch.Tensor,
                         head_parameters: LinearParameters,
                         r: UpdateRandomness) -> tuple[torch.Tensor, torch.Tensor]:
        """Perturb, recompute the gradients SAM needs at the perturbed point, restore.

        Returns the perturbed loss and per-sample losses. With SAM on the encoder only (the
        paper), the head is not perturbed and keeps its clean gradient: its noisy weights from
        the clean pass are reused as constants, and no head weight gradient is computed. With
        ``sam.perturbed_pass="fresh"`` (the authors' code) the pass draws new noise for both
        networks and a new augmentation, and recomputes the target distribution with the
        perturbed online network choosing the next action.
        """
        sam = self.config.sam
        if sam.perturbed_pass == "fresh" and r.perturbed is None:
            raise ValueError("sam.perturbed_pass='fresh' needs the perturbed pass's draws "
                             "(UpdateRandomness.perturbed): use draw_randomness()")
        with self.optimizer.perturbed():
            if sam.perturbed_pass == "fresh":
                fresh = r.perturbed
                self._load_noise(self._noisy_online, fresh.online_noise)
                self._load_noise(self._noisy_target, fresh.target_noise)
                obs, next_obs = self._inputs(batch, fresh)
                head_parameters = self.online.head.linear_parameters(self._autocast_dtype)
                target_dist = self._target_distribution(next_obs, head_parameters, batch.reward,
                                                        batch.discount)
            else:
                if sam.resample_noise:
                    self._load_noise(self._noisy_online, r.perturbed_noise)
                if sam.resample_noise or self._head_perturbed():
                    head_parameters = self.online.head.linear_parameters(self._autocast_dtype)
                else:
                    head_parameters = [(w.detach(), b.detach()) for w, b in head_parameters]
            perturbed_loss, per_sample = cross_entropy_loss(
                self._forward(self.online, obs, head_parameters), action, target_dist, weight)
            self._backward(perturbed_loss, inputs=self._sam_recomputed)
            self._unscale([p.grad for p in self._sam_recomputed if p.grad is not None])
        return perturbed_loss.detach(), per_sample.detach()

    @torch.no_grad()
    def _update_target(self) -> None:
        weight = 1.0 - self.config.agent.target_ema
        torch._foreach_lerp_(self._target_params, self._online_params, weight)

    # --------------------------------------------------------------------------------- reset
    def reset(self, *, encoder_shrink: float | None = None) -> list[str]:
        """A Reset, now: the head re-initialised and, with ``encoder_shrink``, the encoder
        shrunk and perturbed by it (``reset.scope`` "all": both networks re-initialised whole,
        no shrink); in the target network too with ``reset.reset_target``. Returns the names of
        the online parameters it changed; the target's counterparts changed with them."""
        cfg = self.config.reset
        target = self.target if cfg.reset_target else None
        if cfg.scope == "all":
            touched = reset_(self.online, [""], target=target, optimizer=self.optimizer)
        else:
            touched = reset_(self.online, ["head"], target=target, optimizer=self.optimizer)
            if encoder_shrink is not None:
                kept = _layer_norm_parameters(self.online.encoder, target and target.encoder)
                touched += reset_(self.online, ["encoder"], target=target, optimizer=self.optimizer,
                                  shrink=encoder_shrink)
                if cfg.layer_norm_toward == "online":
                    _shrink_layer_norms_toward_online(kept, encoder_shrink)
        self._after_reset()
        return [f"online.{name}" for name in touched]

    def _after_reset(self) -> None:
        """What the authors' optimizer rebuild at a Reset also changes (each its own knob)."""
        self._forget_graphs()  # optimizer state and SAM's scope may be new: record again
        if self.config.reset.optimizer_state == "all":
            self.optimizer.state.clear()  # SAM shares its state with the base optimizer
        if isinstance(self.optimizer, SAM) and self.config.sam.all_after_reset:
            for group in self.optimizer.param_groups:
                group["sam"] = True
            self._sam_recomputed = self._params_recomputed_by_sam()

    def _forget_graphs(self) -> None:
        if self._graph is not None:
            self._graph.invalidate()
        if self._act_graphs is not None:
            self._act_graphs.clear()

    # ---------------------------------------------------------------------------- interfaces
    def networks(self) -> dict[str, nn.Module]:
        """The modules to save: the online network and its EMA target (which acts)."""
        return {"online": self.online, "target": self.target}

    def plasticity_modules(self) -> tuple[nn.Module, dict[str, nn.Module]]:
        """(encoder, {name: module fed with encoder features}) for the plasticity metrics."""
        return self.online.encoder, {"head": self.online.head}

    # ---------------------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {
            "online": self.online.state_dict(), "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(), "updates": self.updates,
            "rng": self.rng.bit_generator.state,
            **({"loss_scale": self.loss_scale.state_dict()} if self.loss_scale is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = state["updates"]
        self.rng.bit_generator.state = state["rng"]
        self._sam_recomputed = self._params_recomputed_by_sam()  # the groups' flags came back too
        self._forget_graphs()
        if self.loss_scale is not None:
            self.loss_scale.load_state_dict(state["loss_scale"])


# Each LayerNorm parameter of the encoder: (online, target or None, copies of both before a reset).
LayerNormCopies = list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]]


def _layer_norm_parameters(encoder: nn.Module, target_encoder: nn.Module | None) -> LayerNormCopies:
    def norm_params(module: nn.Module) -> list[torch.Tensor]:
        return [p for m in module.modules() if isinstance(m, (nn.LayerNorm, LayerNorm2d))
                for p in m.parameters()]

    online = norm_params(encoder)
    target = norm_params(target_encoder) if target_encoder is not None else [None] * len(online)
    return [(p, t, p.detach().clone(), None if t is None else t.detach().clone())
            for p, t in zip(online, target)]


@torch.no_grad()
def _shrink_layer_norms_toward_online(kept: LayerNormCopies, shrink: float) -> None:
    """The authors' shrink-and-perturb of LayerNorm: their "fresh" copy of the network keeps the
    online LayerNorm (it has no reset_parameters), so θ ← s·θ + (1 − s)·θ_online in the online
    network (unchanged up to rounding) and in the target (which moves toward the online)."""
    for online, target, online_before, target_before in kept:
        keep = torch.full_like(online_before, shrink)
        online.copy_(keep * online_before + (1 - keep) * online_before)
        if target is not None:
            target.copy_(keep * target_before + (1 - keep) * online_before)
