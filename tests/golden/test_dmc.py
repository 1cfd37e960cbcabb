"""Our DrQ (SAC) update against the PLASTIC authors' JAX learner, from committed fixtures.

``generate_dmc.py`` (its docstring says how) ran one update of their ``DrQLearner`` for their
``drq`` baseline and for ``plastic`` (encoder LayerNorm, SAM with ρ = 0.01 on the encoder, CReLU
as always in their networks) and saved the state before it, the batch, the random draws, and the
state after it. Here our agent, built by ``build_config(suite="dmc", ...)`` with the default
fidelity "authors", gets that state and those draws and must land where theirs did. Each fidelity
knob flipped back to the paper's intent must break the match. No jax is needed.

Name and layout mapping (flax → ours; "critic/" online critic, "target/" target critic):

- ``SharedEncoder/Conv_i/{kernel,bias}`` → ``encoder`` i-th conv; kernel HWIO → OIHW.
- ``SharedEncoder/LayerNorm_i/{scale,bias}`` → ``encoder`` i-th LayerNorm2d ``{weight,bias}``.
- ``Dense_0``, ``LayerNorm_0`` (critic and actor) → ``projection.0`` (Linear), ``projection.1``;
  the dense kernel's rows are the encoder output in flax's (H, W, C) order, ours (C, H, W).
- ``DoubleCritic_0/Critic_k/MLP_0/Dense_j`` → ``head.q{k+1}``: ``trunk`` linears, the last ``out``.
- ``NormalTanhPolicy_0/MLP_0/Dense_j`` → ``actor.trunk`` linears; ``NormalTanhPolicy_0/Dense_0``
  → ``actor.mean``, ``Dense_1`` → ``actor.log_std``; ``temp/log_temp`` → ``log_alpha``.
- Dense kernels (in, out) → weights (out, in). Images NHWC → NCHW; masks → discount 0.99·mask.
- Adam: optax's ``mu``/``nu``/``count`` → torch's ``exp_avg``/``exp_avg_sq``/``step``.

Tolerance, relative to each tensor's own scale (its largest magnitude): 1e-5 for losses, gradients
and Adam moments (measured: at most 4e-7, 2e-6 and 3e-6). Parameters after the step are compared
relative to the largest change the step made to the tensor, beyond 2 ulps of the float32
parameter, at 1e-3: Adam divides each gradient by its own running scale, so an element whose
momentum nearly cancels (μ = 0.9·μ_prev + 0.1·g ≈ 0) turns a 2e-6 gradient difference into a
1e-4 difference of its step (measured: 1.4e-4); and optax computes the bias correction
1 − β2ᵗ in float32 (β2 → 0.99900001), which makes every step of theirs ~1e-5 smaller at t = 2.
A knob flipped to the paper's intent moves these errors to 1e-2 ... 3.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from plastic.agents.drq_sac import DrQSACAgent, SACUpdateRandomness
from plastic.configs import build_config
from plastic.nn.layers import LayerNorm2d
from plastic.replay.buffer import Batch
from plastic.reset import ResetSchedule

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "dmc"
PRESETS = {"drq": "drq", "plastic": "plastic"}
# Relative tolerance per group of compared values (see the module docstring).
TOLERANCE = {"info": 1e-5, "grad": 1e-5, "opt": 1e-5, "after": 1e-3}
ULPS = 2
# Each knob back at the paper's intent, and the fixtures whose comparison it must break.
KNOB_FLIPS = {
    "sac.conv_padding": ("symmetric", ("drq", "plastic")),
    "network.crelu": (False, ("drq", "plastic")),
    "sam.exclusion": ("clean", ("plastic",)),
}


def load_fixture(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def meta(fixture: dict[str, np.ndarray]) -> dict[str, Any]:
    return json.loads(fixture["meta"].tobytes())


def build_agent(name: str, fixture: dict[str, np.ndarray], **overrides: Any) -> DrQSACAgent:
    """Our agent with the fixture's sizes, through the real config path (fidelity "authors")."""
    s, variant = meta(fixture)["settings"], meta(fixture)["variant"]
    config = build_config("dmc", "reacher-easy", PRESETS[name], seed=0, overrides={
        "sac.encoder_channels": "-".join(map(str, s["cnn_features"])),
        "sac.hidden": s["hidden_dims"][0], "sac.hidden_layers": len(s["hidden_dims"]),
        "sac.latent_dim": s["latent_dim"], "sac.batch_size": s["batch_size"],
        "sac.actor_lr": s["actor_lr"], "sac.critic_lr": s["critic_lr"], "sac.alpha_lr": s["temp_lr"],
        "sac.critic_tau": s["tau"], "sac.init_temperature": s["init_temperature"],
        "sac.shift_pad": s["shift_pad"], "sam.rho": variant["rho"], **overrides,
    })
    assert config.fidelity == "authors" and config.sam.enabled == variant["use_sam"]
    assert config.network.layer_norm == variant["use_LN"]
    torch.manual_seed(0)
    obs_shape = (s["channels"], s["image_size"], s["image_size"])
    return DrQSACAgent(config, obs_shape, s["action_dim"], torch.device("cpu"))


# ------------------------------------------------------------------------------ the mapping
@dataclass
class Slot:
    """One of our tensors under a flax name, with the layout changes both ways."""

    tensor: torch.Tensor
    optimizer: torch.optim.Optimizer | None
    to_ours: Callable[[np.ndarray], np.ndarray]
    to_flax: Callable[[np.ndarray], np.ndarray]


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _dense(x: np.ndarray) -> np.ndarray:
    return x.T


def _conv_to_ours(kernel: np.ndarray) -> np.ndarray:
    return kernel.transpose(3, 2, 0, 1)  # HWIO → OIHW


def _conv_to_flax(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 1, 0)


def _projection(features: tuple[int, int, int]) -> tuple[Callable, Callable]:
    c, h, w = features

    def to_ours(kernel: np.ndarray) -> np.ndarray:
        latent = kernel.shape[1]
        return kernel.reshape(h, w, c, latent).transpose(2, 0, 1, 3).reshape(c * h * w, latent).T

    def to_flax(weight: np.ndarray) -> np.ndarray:
        latent = weight.shape[0]
        return weight.T.reshape(c, h, w, latent).transpose(1, 2, 0, 3).reshape(h * w * c, latent)

    return to_ours, to_flax


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def slots(agent: DrQSACAgent) -> dict[str, Slot]:
    """Every parameter of ours under its flax name."""
    out: dict[str, Slot] = {}
    features = tuple(agent.critic.encoder.layers(torch.zeros(1, *agent.obs_shape)).shape[1:])
    projection = _projection(features)

    def put(name: str, module: nn.Module, optimizer: torch.optim.Optimizer | None,
            weight: tuple[Callable, Callable], weight_name: str = "kernel") -> None:
        out[f"{name}/{weight_name}"] = Slot(module.weight, optimizer, *weight)
        out[f"{name}/bias"] = Slot(module.bias, optimizer, _same, _same)

    for prefix, critic, optimizer in (("critic", agent.critic, agent.critic_optimizer),
                                      ("target", agent.target_critic, None)):
        convs = [m for m in critic.encoder.modules() if isinstance(m, nn.Conv2d)]
        norms = [m for m in critic.encoder.modules() if isinstance(m, LayerNorm2d)]
        for i, conv in enumerate(convs):
            put(f"{prefix}/SharedEncoder/Conv_{i}", conv, optimizer, (_conv_to_ours, _conv_to_flax))
        for i, norm in enumerate(norms):
            put(f"{prefix}/SharedEncoder/LayerNorm_{i}", norm, optimizer, (_same, _same), "scale")
        head = critic.head
        put(f"{prefix}/Dense_0", head.projection[0], optimizer, projection)
        put(f"{prefix}/LayerNorm_0", head.projection[1], optimizer, (_same, _same), "scale")
        for k, q in enumerate((head.q1, head.q2)):
            mlp = f"{prefix}/DoubleCritic_0/Critic_{k}/MLP_0"
            for j, linear in enumerate(_linears(q)):
                put(f"{mlp}/Dense_{j}", linear, optimizer, (_dense, _dense))
    actor, optimizer = agent.actor, agent.actor_optimizer
    put("actor/Dense_0", actor.projection[0], optimizer, projection)
    put("actor/LayerNorm_0", actor.projection[1], optimizer, (_same, _same), "scale")
    for j, linear in enumerate(_linears(actor.trunk)):
        put(f"actor/NormalTanhPolicy_0/MLP_0/Dense_{j}", linear, optimizer, (_dense, _dense))
    put("actor/NormalTanhPolicy_0/Dense_0", actor.mean, optimizer, (_dense, _dense))
    put("actor/NormalTanhPolicy_0/Dense_1", actor.log_std, optimizer, (_dense, _dense))
    out["temp/log_temp"] = Slot(agent.log_alpha, agent.alpha_optimizer,
                                lambda x: x.reshape(()), lambda x: x.reshape(()))
    return out


def _ours(slot: Slot, array: np.ndarray) -> torch.Tensor:
    value = torch.from_numpy(np.array(slot.to_ours(array), order="C"))
    if value.shape != slot.tensor.shape:
        raise ValueError(f"shape {tuple(value.shape)} does not fit ours {tuple(slot.tensor.shape)}")
    return torch.empty_like(slot.tensor).copy_(value)  # keeps our memory format


def _flax(slot: Slot, value: torch.Tensor) -> np.ndarray:
    return slot.to_flax(value.detach().cpu().numpy())


def load_state(agent: DrQSACAgent, fixture: dict[str, np.ndarray]) -> None:
    """Parameters and Adam states "before/…" into our agent (updates done: the fixture's count)."""
    mapping = slots(agent)
    params = {k[len("before/"):] for k in fixture
              if k.startswith("before/") and not k.startswith("before/opt/")}
    assert params == set(mapping), sorted(params ^ set(mapping))
    counts = {int(fixture[k].reshape(())) for k in fixture
              if k.startswith("before/opt/") and k.endswith("/count")}
    assert len(counts) == 1
    step = counts.pop()
    with torch.no_grad():
        for name, slot in mapping.items():
            slot.tensor.copy_(_ours(slot, fixture[f"before/{name}"]))
            if slot.optimizer is not None:
                slot.optimizer.state[slot.tensor] = {
                    "step": torch.tensor(float(step)),
                    "exp_avg": _ours(slot, fixture[f"before/opt/mu/{name}"]),
                    "exp_avg_sq": _ours(slot, fixture[f"before/opt/nu/{name}"]),
                }
    agent.updates = step


def fixture_batch(fixture: dict[str, np.ndarray], discount: float) -> tuple[Batch, SACUpdateRandomness]:
    def chw(images: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))

    size = len(fixture["input/actions"])
    batch = Batch(
        obs=chw(fixture["input/observations"]), action=fixture["input/actions"],
        reward=fixture["input/rewards"], discount=(discount * fixture["input/masks"]).astype(np.float32),
        next_obs=chw(fixture["input/next_observations"]), weight=np.ones(size, np.float32),
        index=np.arange(size),
    )
    randomness = SACUpdateRandomness(
        obs_shift=torch.from_numpy(fixture["draw/obs_crop"]).long(),
        next_obs_shift=torch.from_numpy(fixture["draw/next_obs_crop"]).long(),
        next_action_noise=torch.from_numpy(fixture["draw/next_action_eps"]),
        action_noise=torch.from_numpy(fixture["draw/action_eps"]),
    )
    return batch, randomness


# ------------------------------------------------------------------------------ running ours
def run_ours(name: str, fixture: dict[str, np.ndarray], **overrides: Any) -> dict[str, np.ndarray]:
    """Our update from the fixture's state; what it gives, under the fixture's keys."""
    agent = build_agent(name, fixture, **overrides)
    load_state(agent, fixture)
    batch, randomness = fixture_batch(fixture, meta(fixture)["settings"]["discount"])
    stats = agent.update(batch, randomness)
    assert not ResetSchedule.from_config(agent.config).due(agent.updates)  # their update: no Reset
    out: dict[str, np.ndarray] = {}
    for flax_name, slot in slots(agent).items():
        out[f"after/{flax_name}"] = _flax(slot, slot.tensor)
        if slot.optimizer is not None:
            state = slot.optimizer.state[slot.tensor]
            out[f"after/opt/mu/{flax_name}"] = _flax(slot, state["exp_avg"])
            out[f"after/opt/nu/{flax_name}"] = _flax(slot, state["exp_avg_sq"])
            out[f"grad/{flax_name}"] = _flax(slot, slot.tensor.grad)
    steps = {"critic_encoder": agent.critic.encoder, "critic_head": agent.critic.head,
             "actor": agent.actor}
    optimizers = {"critic_encoder": agent.critic_optimizer, "critic_head": agent.critic_optimizer,
                  "actor": agent.actor_optimizer}
    for counter, module in steps.items():
        counts = {float(optimizers[counter].state[p]["step"]) for p in module.parameters()}
        out[f"after/opt/{counter}/count"] = np.array(counts.pop() if len(counts) == 1 else np.nan)
    out["after/opt/temp/count"] = np.array(float(agent.alpha_optimizer.state[agent.log_alpha]["step"]))
    # Their logged critic loss is the last pass's: SAM's perturbed one.
    critic_loss = stats["loss_perturbed"] if agent.config.sam.enabled else stats["critic_loss"]
    out.update({"info/critic_loss": critic_loss, "info/actor_loss": stats["actor_loss"],
                "info/entropy": stats["entropy"], "info/temp_loss": stats["alpha_loss"]})
    return {k: np.asarray(torch.as_tensor(v).detach().cpu().numpy() if torch.is_tensor(v) else v)
            for k, v in out.items()}


def relative_errors(ours: dict[str, np.ndarray], fixture: dict[str, np.ndarray]) -> dict[str, float]:
    """max|ours − theirs| over the tensor's scale: the largest |theirs|, or for parameters after
    the step, the largest change their step made. A parameter is stored in float32, so there the
    difference is counted beyond ULPS units in the last place of the parameter: a step of 1e-4
    (the learning rate) or 5e-7 (the target's EMA) on a parameter of 0.5 is resolved only to its
    ulp, 6e-8, however exactly both sides compute it."""
    errors = {}
    for key, mine in ours.items():
        theirs32 = fixture[key].reshape(np.shape(mine))
        theirs, difference = theirs32.astype(np.float64), np.abs(mine - theirs32.astype(np.float64))
        if key.startswith("after/") and not key.startswith("after/opt/"):
            before = fixture["before/" + key[len("after/"):]].reshape(theirs.shape)
            scale = np.abs(theirs - before).max()
            difference = np.maximum(difference - ULPS * np.spacing(np.abs(theirs32)), 0.0)
        else:
            scale = np.abs(theirs).max()
        errors[key] = float(difference.max() / max(scale, 1e-30))
    return errors


def mismatches(ours: dict[str, np.ndarray], fixture: dict[str, np.ndarray]) -> list[str]:
    errors = relative_errors(ours, fixture)
    group = {k: ("opt" if k.startswith("after/opt/") else k.split("/")[0]) for k in errors}
    return [f"{k}: {e:.2e}" for k, e in sorted(errors.items()) if not e <= TOLERANCE[group[k]]]


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.npz"))


# ------------------------------------------------------------------------------ tests
def test_fixtures_are_there_and_small():
    assert fixture_names() == ["drq", "plastic"]
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 2_000_000
    for name in fixture_names():
        versions = meta(load_fixture(name))["versions"]
        assert versions["flax"] == "0.6.8" and versions["optax"] == "0.1.4"


@pytest.mark.parametrize("name", ["drq", "plastic"])
def test_one_update_matches_the_authors(name):
    fixture = load_fixture(name)
    ours = run_ours(name, fixture)
    expected = {k for k in fixture if k.startswith(("after/", "grad/"))} | \
        {f"info/{k}" for k in ("critic_loss", "actor_loss", "entropy", "temp_loss")}
    assert set(ours) == expected  # every parameter, moment and gradient of theirs is compared
    assert mismatches(ours, fixture) == []


@pytest.mark.parametrize(("name", "knob", "value"), [
    (name, knob, value) for knob, (value, names) in KNOB_FLIPS.items() for name in names])
def test_each_knob_at_the_papers_intent_breaks_the_match(name, knob, value):
    fixture = load_fixture(name)
    try:
        ours = run_ours(name, fixture, **{knob: value})
    except ValueError as error:  # e.g. no CReLU: their kernels do not fit our layers
        assert "does not fit ours" in str(error)
        return
    assert mismatches(ours, fixture)


def init_grams(agent: DrQSACAgent) -> dict[str, np.ndarray]:
    grams = {}
    for name, slot in slots(agent).items():
        if name.endswith("/kernel") and not name.startswith("target/"):
            m = slot.to_flax(slot.tensor.detach().numpy()).astype(np.float64)
            m = m.reshape(-1, m.shape[-1])
            grams[f"init_gram/{name}"] = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    return grams


@pytest.mark.parametrize("log_std_gain", [None, 2 ** 0.5])
def test_orthogonal_init_gains_match_the_authors(log_std_gain):
    """Every orthogonal kernel K of a fresh init has KᵀK = gain²·I (or KKᵀ); theirs are in the
    fixture. The actor's log-std layer has gain 1 in their code; √2 (the intent) must differ."""
    fixture = load_fixture("plastic")
    overrides = {} if log_std_gain is None else {"sac.log_std_gain": log_std_gain}
    ours = init_grams(build_agent("plastic", fixture, **overrides))
    theirs = {k: v for k, v in fixture.items() if k.startswith("init_gram/")}
    assert theirs and set(theirs) <= set(ours)
    differ = [k for k in theirs if not np.allclose(ours[k], theirs[k], atol=1e-5)]
    assert differ == ([] if log_std_gain is None else ["init_gram/actor/NormalTanhPolicy_0/Dense_1/kernel"])
