"""A straightforward reference of ``RainbowAgent.update``, written for clarity, not speed.

It is what the fast learner is measured and tested against: plain NCHW PyTorch on a dict of
parameter tensors, noisy weights rebuilt as μ + σ·(ε_out ε_inᵀ) on every pass, LayerNorm from its
definition, the augmentation and the C51 projection as per-sample loops, SAM as two full forward
and backward passes, gradient clipping and Adam written out. It shares no computation with the
fast path; only the container of random draws (``UpdateRandomness``) is common, so that both can
be fed the same noise, shifts and intensities.

One update, as the agent defines it (the paper's DrQ(ε) Rainbow): draw noise for both networks;
augment s and s′; target distribution from the target network at s′ with the action chosen by
the online network at s′ (double Q), projected onto the support; cross-entropy loss at s weighted by the
importance weights; SAM (if on): perturb the SAM parameters by ρ·g/‖g‖, recompute the gradient
there; parameters outside SAM take the clean gradient; clip the total gradient norm; Adam step;
EMA of the target. Resets are not part of it (they happen between updates). The fidelity knobs of
the update are followed too: the dueling gradient scale, SAM's pre-clip of the clean gradient, and
a perturbed pass that redraws noise and augmentation and recomputes the target.

Also here, for the tests and the benchmarks alike: the synthetic setting the two learners are
compared in (``SUITE_SHAPES``, ``make_config``, ``synthetic_batch``) and the FLOP count of one
update (``layer_macs``, ``update_flops``). ``tests/test_fast_path.py`` checks the fast update
against ``ReferenceLearner``; ``benchmarks/bench_learner.py`` and ``benchmarks/bench_acting.py``
time the two side by side (they import this module through ``benchmarks/harness.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plastic.agents.rainbow import RainbowAgent, UpdateRandomness, build_q_network
from plastic.configs import build_config
from plastic.configs.schema import Config
from plastic.nn.layers import NoisyLinear
from plastic.replay.buffer import Batch

# ------------------------------------------------------------------------ the synthetic setting
SUITE_SHAPES: dict[str, dict[str, Any]] = {
    # Atari: the full action set (18) is the largest head any game needs.
    "atari": {"game": "pong", "obs_shape": (4, 84, 84), "num_actions": 18, "high": 256},
    # MinAtar's largest observation among the games the agent sees is 4x10x10 (breakout has 4
    # channels); 6 actions is MinAtar's full action set.
    "minatar": {"game": "breakout", "obs_shape": (4, 10, 10), "num_actions": 6, "high": 2},
}


def make_config(suite: str, preset: str, batch_size: int, device: str,
                overrides: dict[str, Any] | None = None) -> Config:
    if suite not in SUITE_SHAPES:
        raise ValueError(f"unknown suite {suite!r}; valid suites: {', '.join(SUITE_SHAPES)}")
    if batch_size < 1:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    return build_config(suite, SUITE_SHAPES[suite]["game"], preset,
                        overrides={"agent.batch_size": batch_size, "device": device, **(overrides or {})})


def synthetic_batch(obs_shape: tuple[int, ...], num_actions: int, batch_size: int, high: int,
                    seed: int = 0) -> Batch:
    """A replay-like batch: uint8 frames, 10-step returns, some terminals, importance weights."""
    rng = np.random.default_rng(seed)
    discount = np.where(rng.random(batch_size) < 0.1, 0.0, 0.99**10).astype(np.float32)
    return Batch(
        obs=rng.integers(0, high, (batch_size, *obs_shape), dtype=np.uint8),
        action=rng.integers(0, num_actions, batch_size),
        reward=rng.normal(0.0, 2.0, batch_size).astype(np.float32),
        discount=discount,
        next_obs=rng.integers(0, high, (batch_size, *obs_shape), dtype=np.uint8),
        weight=rng.uniform(0.3, 1.0, batch_size).astype(np.float32),
        index=np.arange(batch_size),
    )


# ------------------------------------------------------------------------- the reference update
_LAYER_NORM_EPS = 1e-6  # LayerNorm2d's default
_SAM_EPS = 1e-12  # SAM's guard against a zero gradient norm
_CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s guard
ENCODER_LAYOUTS: dict[str, list[tuple[int, int, int]]] = {  # (out channels, kernel, stride)
    "nature": [(32, 8, 4), (64, 4, 2), (64, 3, 1)],
    "minatar": [(16, 3, 1)],
}


def layer_norm_features(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """LayerNorm over dim 1 (the channels of NCHW, the features of (B, F)) at every other index."""
    shape = (1, -1, *[1] * (x.dim() - 2))
    mean = x.mean(dim=1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
    return (x - mean) / torch.sqrt(var + _LAYER_NORM_EPS) * weight.view(shape) + bias.view(shape)


def activate(params: dict[str, torch.Tensor], name: str, x: torch.Tensor, *, layer_norm: bool,
             crelu: bool) -> tuple[torch.Tensor, int]:
    """[LayerNorm (module ``name``)], then ReLU or CReLU; also how many modules that took."""
    if layer_norm:
        x = layer_norm_features(x, params[f"{name}.weight"], params[f"{name}.bias"])
    x = torch.cat([torch.relu(x), torch.relu(-x)], 1) if crelu else torch.relu(x)
    return x, 1 + int(layer_norm)


def encoder_forward(config: Config, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    net = config.network
    index = 0
    for _, _, stride in ENCODER_LAYOUTS[net.encoder]:  # CReLU: the conv's weight has half the channels
        x = F.conv2d(x, params[f"encoder.{index}.weight"], params[f"encoder.{index}.bias"], stride=stride)
        x, modules = activate(params, f"encoder.{index + 1}", x, layer_norm=net.layer_norm_in("encoder"),
                              crelu=net.crelu_in("encoder"))
        index += 1 + modules
    return x.reshape(x.shape[0], -1)


def linear_forward(config: Config, params: dict[str, torch.Tensor], name: str, x: torch.Tensor,
                   noise: dict[str, tuple[torch.Tensor, torch.Tensor]] | None) -> torch.Tensor:
    if not config.network.noisy:
        return x @ params[f"{name}.weight"].t() + params[f"{name}.bias"]
    weight, bias = params[f"{name}.weight_mu"], params[f"{name}.bias_mu"]
    if noise is not None:
        eps_in, eps_out = noise[name]
        weight = weight + params[f"{name}.weight_sigma"] * torch.outer(eps_out, eps_in)
        bias = bias + params[f"{name}.bias_sigma"] * eps_out
    return x @ weight.t() + bias


def mlp_forward(config: Config, params: dict[str, torch.Tensor], name: str, x: torch.Tensor,
                noise: dict[str, tuple[torch.Tensor, torch.Tensor]] | None) -> torch.Tensor:
    net = config.network
    hidden = linear_forward(config, params, f"{name}.0", x, noise)
    hidden, modules = activate(params, f"{name}.1", hidden, layer_norm=net.layer_norm_in("head"),
                               crelu=net.crelu_in("head"))
    return linear_forward(config, params, f"{name}.{1 + modules}", hidden, noise)


def network_forward(config: Config, params: dict[str, torch.Tensor], x: torch.Tensor,
                    noise: dict[str, tuple[torch.Tensor, torch.Tensor]] | None,
                    num_actions: int) -> torch.Tensor:
    """Logits (B, actions, atoms) of the Q-network whose parameters are ``params``."""
    atoms = config.network.num_atoms
    features = encoder_forward(config, params, x)
    scale = config.network.dueling_grad_scale
    if config.network.dueling and scale != 1.0:  # same value; gradient into the encoder × scale
        features = features * scale + (features * (1.0 - scale)).detach()
    advantage = mlp_forward(config, params, "head.advantage", features, noise).view(-1, num_actions, atoms)
    if not config.network.dueling:
        return advantage
    value = mlp_forward(config, params, "head.value", features, noise).view(-1, 1, atoms)
    return value + advantage - advantage.mean(dim=1, keepdim=True)


def augment_per_sample(x: torch.Tensor, shift: torch.Tensor | None, intensity: torch.Tensor | None,
                       pad: int, intensity_scale: float) -> torch.Tensor:
    """Replicate-pad and crop each sample at its own offset, then scale its intensity."""
    if shift is not None:
        h, w = x.shape[-2:]
        padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
        x = torch.stack([padded[i, :, int(dy):int(dy) + h, int(dx):int(dx) + w]
                         for i, (dy, dx) in enumerate(shift.tolist())])
    if intensity is not None:
        x = torch.stack([x[i] * (1.0 + intensity_scale * float(n)) for i, n in enumerate(intensity)])
    return x


def project_per_sample(probs: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor,
                       support: torch.Tensor) -> torch.Tensor:
    """C51 projection, one sample at a time."""
    num_atoms = support.numel()
    v_min, v_max = float(support[0]), float(support[-1])
    delta = (v_max - v_min) / (num_atoms - 1)
    out = torch.zeros_like(probs)
    for i in range(probs.shape[0]):
        tz = (reward[i] + discount[i] * support).clamp(v_min, v_max)
        b = (tz - v_min) / delta
        lower, upper = b.floor(), b.ceil()
        exact = lower == upper
        out[i].index_add_(0, lower.long(), probs[i] * (upper - b))
        out[i].index_add_(0, upper.long(), probs[i] * (b - lower))
        out[i].index_add_(0, lower[exact].long(), probs[i][exact])
    return out


class ReferenceLearner:
    """The reference update on its own copy of the online and target parameters and Adam state."""

    def __init__(self, config: Config, online: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                 num_actions: int, device: torch.device) -> None:
        self.config, self.num_actions, self.device = config, num_actions, device
        self.online = {k: v.detach().clone().to(device) for k, v in online.items()}
        self.target = {k: v.detach().clone().to(device) for k, v in target.items()}
        net = config.network
        self.support = torch.linspace(net.v_min, net.v_max, net.num_atoms, device=device)
        self.adam: dict[str, dict[str, Any]] = {}
        self.grads: dict[str, torch.Tensor] = {}

    @classmethod
    def from_agent(cls, agent: RainbowAgent) -> ReferenceLearner:
        """Copies of a fresh ``RainbowAgent``'s parameters (its Adam state is not copied)."""
        return cls(agent.config, dict(agent.online.named_parameters()),
                   dict(agent.target.named_parameters()), agent.num_actions, agent.device)

    def noisy_layer_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each noisy linear layer, by name."""
        return {k[: -len(".weight_mu")]: (v.shape[1], v.shape[0])
                for k, v in self.online.items() if k.endswith(".weight_mu")}

    def draw_randomness(self, batch_size: int) -> UpdateRandomness:
        """Fresh draws, one layer and one tensor at a time."""
        def f(x: torch.Tensor) -> torch.Tensor:
            return x.sign() * x.abs().sqrt()

        def noise() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
            return {name: (f(torch.randn(i, device=self.device)), f(torch.randn(o, device=self.device)))
                    for name, (i, o) in self.noisy_layer_shapes().items()}

        agent = self.config.agent
        shift = agent.augment and agent.shift_pad > 0
        scale = agent.augment and agent.intensity_scale > 0

        def offsets() -> torch.Tensor | None:
            return torch.randint(0, 2 * agent.shift_pad + 1, (batch_size, 2), device=self.device) \
                if shift else None

        def intensities() -> torch.Tensor | None:
            return torch.randn(batch_size, device=self.device).clamp(-2.0, 2.0) if scale else None

        sam = self.config.sam
        draws = UpdateRandomness(
            online_noise=noise(), target_noise=noise(),
            perturbed_noise=noise() if sam.enabled and sam.resample_noise else None,
            obs_shift=offsets(), next_obs_shift=offsets(),
            obs_intensity=intensities(), next_obs_intensity=intensities(),
        )
        if sam.enabled and sam.perturbed_pass == "fresh":
            draws.perturbed = UpdateRandomness(
                online_noise=noise(), target_noise=noise(), obs_shift=offsets(),
                next_obs_shift=offsets(), obs_intensity=intensities(), next_obs_intensity=intensities())
        return draws

    def _sam_keys(self) -> tuple[list[str], list[str]]:
        """(perturbed parameter names, names whose final gradient is the clean one)."""
        sam = self.config.sam
        in_scope = {
            "encoder": lambda k: k.startswith("encoder."),
            "head": lambda k: k.startswith("head."),
            "all": lambda k: True,
        }[sam.scope]
        keys = list(self.online)
        perturbed = [k for k in keys if in_scope(k) or sam.exclusion != "clean"]
        clean = [k for k in keys if not in_scope(k)]
        return perturbed, clean

    def update(self, batch: Batch, randomness: UpdateRandomness | None = None) -> dict[str, Any]:
        cfg, agent, sam = self.config, self.config.agent, self.config.sam
        if randomness is None:
            randomness = self.draw_randomness(len(batch.action))
        r = randomness
        noisy = cfg.network.noisy
        online_noise = r.online_noise if noisy else None

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, device=self.device)

        action = tensor(batch.action).long()
        reward, discount, weight = tensor(batch.reward), tensor(batch.discount), tensor(batch.weight)

        def inputs_and_target(draws: UpdateRandomness, online: dict[str, torch.Tensor]
                              ) -> tuple[torch.Tensor, torch.Tensor]:
            """Augmented s, and the projected target distribution at augmented s′."""
            scale = cfg.network.input_scale
            obs = augment_per_sample(tensor(batch.obs).float() / scale, draws.obs_shift,
                                     draws.obs_intensity, agent.shift_pad, agent.intensity_scale)
            next_obs = augment_per_sample(tensor(batch.next_obs).float() / scale, draws.next_obs_shift,
                                          draws.next_obs_intensity, agent.shift_pad, agent.intensity_scale)
            online_noise = draws.online_noise if noisy else None
            with torch.no_grad():
                next_probs = F.softmax(network_forward(cfg, self.target, next_obs,
                                                       draws.target_noise if noisy else None,
                                                       self.num_actions), -1)
                selector = next_probs
                if agent.double_q:
                    selector = F.softmax(network_forward(cfg, online, next_obs, online_noise,
                                                         self.num_actions), -1)
                next_action = (selector * self.support).sum(-1).argmax(1)
                chosen = torch.stack([next_probs[i, next_action[i]] for i in range(len(next_action))])
                return obs, project_per_sample(chosen, reward, discount, self.support)

        def loss_and_grads(params: dict[str, torch.Tensor], noise, obs: torch.Tensor,
                           target_dist: torch.Tensor) -> tuple[torch.Tensor, ...]:
            leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
            logits = network_forward(cfg, leaves, obs, noise, self.num_actions)
            chosen_logits = torch.stack([logits[i, action[i]] for i in range(len(action))])
            per_sample = -(target_dist * F.log_softmax(chosen_logits, -1)).sum(-1)
            loss = (weight * per_sample).mean()
            grads = torch.autograd.grad(loss, list(leaves.values()))
            return loss.detach(), per_sample.detach(), logits.detach(), dict(zip(leaves, grads))

        def clipped(grads: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            total_norm = torch.sqrt(sum((g * g).sum() for g in grads.values()))
            clip = torch.clamp(agent.max_grad_norm / (total_norm + _CLIP_EPS), max=1.0)
            return {k: g * clip for k, g in grads.items()}, total_norm

        obs, target_dist = inputs_and_target(r, self.online)
        loss, per_sample, logits, grads = loss_and_grads(self.online, online_noise, obs, target_dist)
        priority = per_sample
        stats: dict[str, Any] = {}
        if sam.enabled:
            stats["grad_norm_clean"] = torch.sqrt(sum((g * g).sum() for g in grads.values()))
            if sam.preclip:
                grads, _ = clipped(grads)
            perturbed_keys, clean_keys = self._sam_keys()
            if sam.adaptive:
                scaled = {k: self.online[k].abs() * grads[k] for k in perturbed_keys}
                norm = torch.sqrt(sum((s * s).sum() for s in scaled.values()))
                step = {k: sam.rho * self.online[k].abs() * scaled[k] / (norm + _SAM_EPS)
                        for k in perturbed_keys}
            else:
                norm = torch.sqrt(sum((grads[k] * grads[k]).sum() for k in perturbed_keys))
                step = {k: sam.rho * grads[k] / (norm + _SAM_EPS) for k in perturbed_keys}
            perturbed = {k: v + step[k] if k in step else v for k, v in self.online.items()}
            fresh = sam.perturbed_pass == "fresh"
            if fresh:  # the whole forward again, with its own draws
                obs2, target_dist2 = inputs_and_target(r.perturbed, perturbed)
                noise2 = r.perturbed.online_noise if noisy else None
            else:
                obs2, target_dist2 = obs, target_dist
                noise2 = (r.perturbed_noise if sam.resample_noise else r.online_noise) if noisy else None
            loss2, per_sample2, _, grads2 = loss_and_grads(perturbed, noise2, obs2, target_dist2)
            stats["loss_perturbed"] = loss2
            if fresh:
                priority = per_sample2
            final = dict(grads2)
            for k in clean_keys:
                final[k] = grads[k] + grads2[k] if sam.exclusion == "authors" else grads[k]
            grads = final

        grads, stats["grad_norm"] = clipped(grads)
        self.grads = grads
        self._adam_step(grads)
        ema = agent.target_ema
        for k in self.target:
            self.target[k] = ema * self.target[k] + (1.0 - ema) * self.online[k]

        q = (F.softmax(logits, -1) * self.support).sum(-1)
        stats.update(loss=loss, q_mean=q.mean(), priority=priority)
        return stats

    def _adam_step(self, grads: dict[str, torch.Tensor]) -> None:
        agent = self.config.agent
        beta1, beta2 = 0.9, 0.999
        for k, g in grads.items():
            state = self.adam.setdefault(k, {"step": 0, "m": torch.zeros_like(g), "v": torch.zeros_like(g)})
            state["step"] += 1
            state["m"] = beta1 * state["m"] + (1 - beta1) * g
            state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
            m_hat = state["m"] / (1 - beta1 ** state["step"])
            v_hat = state["v"] / (1 - beta2 ** state["step"])
            self.online[k] = self.online[k] - agent.lr * m_hat / (torch.sqrt(v_hat) + agent.adam_eps)


# --------------------------------------------------------------------------- the update's FLOPs
def layer_macs(network: nn.Module, obs_shape: tuple[int, ...]) -> list[tuple[str, int]]:
    """Multiply-accumulates per sample of every conv and linear layer, in forward order."""
    macs: list[tuple[str, int]] = []
    hooks = []
    for name, module in network.named_modules():
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, (nn.Linear, NoisyLinear)):
            per_output = module.in_features
        else:
            continue
        hooks.append(module.register_forward_hook(
            lambda m, i, o, name=name, k=per_output: macs.append((name, o[0].numel() * k))))
    network.eval()
    with torch.no_grad():
        network(torch.zeros(1, *obs_shape))
    for hook in hooks:
        hook.remove()
    return macs


def update_flops(config: Config, obs_shape: tuple[int, ...], num_actions: int) -> float:
    """The FLOPs one update needs (a multiply-add is 2), convs and linear layers only.

    Target forward at s′, online forward at s′ (double Q), the clean forward and backward at s
    (weight gradients everywhere, input gradients below all but the first layer), and with SAM a
    second forward and backward with weight gradients only for the parameters SAM recomputes.
    """
    macs = layer_macs(build_q_network(config, obs_shape, num_actions), obs_shape)
    forward = sum(m for _, m in macs)
    first = macs[0][1]
    total = forward * (2 if config.agent.double_q else 1)  # target and online at s′
    total += forward + forward + (forward - first)  # clean pass: forward, weight grads, input grads
    if config.sam.enabled:
        sam = config.sam
        recomputed = {"encoder": ("encoder",), "head": ("head",), "all": ("encoder", "head")}[sam.scope]
        if sam.exclusion == "authors":
            recomputed = ("encoder", "head")
        weight_grads = sum(m for name, m in macs if name.split(".")[0] in recomputed)
        total += forward + weight_grads + (forward - first)
    return 2.0 * total * config.agent.batch_size
