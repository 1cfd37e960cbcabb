"""Typed run configuration. Defaults are the paper's Atari-100k settings (its appendix and the
authors' configs); the ``sac`` section holds DrQ (SAC)'s settings for DeepMind Control, which
suite ``dmc`` uses.

Every field is reachable as a dotted key (``sam.rho``, ``train.replay_ratio``) for presets and
``--set key=value``; an unknown key is an error that lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from plastic.suites import SUITES, get_suite


@dataclass
class NetworkConfig:
    encoder: str = "nature"  # "nature" (32-64-64 convs, Atari) or "minatar" (one 16-channel conv)
    layer_norm: bool = False  # LayerNorm on pre-activations, in the layers of layer_norm_scope
    # Where LayerNorm goes when on: "encoder" (paper: after every conv), "head" (every head MLP's
    # hidden layer) or "all".
    layer_norm_scope: str = "encoder"
    crelu: bool = False  # CReLU instead of ReLU, in the layers of crelu_scope
    # Where CReLU goes when on: "head" (paper: hidden/2 units, concatenated back to hidden),
    # "encoder" (each conv outputs half its channels, concatenated back) or "all".
    crelu_scope: str = "head"
    hidden: int = 512
    noisy: bool = True
    noisy_std: float = 0.5
    dueling: bool = True
    num_atoms: int = 51
    v_min: float = -10.0
    v_max: float = 10.0
    input_scale: float = 255.0  # observations are divided by this (MinAtar boards are 0/1: 1.0)
    # The dueling head scales the gradient flowing back into the encoder by this factor (the
    # authors' code: 2^-1/2, as in SPR/DER's dueling head; the paper does not mention it: 1).
    dueling_grad_scale: float = 1.0

    def layer_norm_in(self, part: str) -> bool:
        """Whether LayerNorm goes in ``part`` ("encoder" or "head") of the network."""
        return self.layer_norm and _in_scope("network.layer_norm_scope", self.layer_norm_scope, part)

    def crelu_in(self, part: str) -> bool:
        """Whether CReLU goes in ``part`` ("encoder" or "head") of the network."""
        return self.crelu and _in_scope("network.crelu_scope", self.crelu_scope, part)


def _in_scope(key: str, scope: str, part: str) -> bool:
    check_choice(key, scope)
    return scope in (part, "all")


@dataclass
class SAMConfig:
    enabled: bool = False
    rho: float = 0.1
    scope: str = "encoder"  # "encoder" (paper), "head" or "all": which parameters SAM perturbs
    adaptive: bool = False
    resample_noise: bool = False  # fresh noisy-layer noise in the perturbed pass
    # "clean": the paper's intent. The authors' code perturbs the excluded head too; its final
    # gradient is clean + perturbed ("authors", their Atari code) or clean ("authors-dmc").
    exclusion: str = "clean"
    # Clip the clean gradient to agent.max_grad_norm before the perturbation (the authors' code):
    # the excluded head then keeps (and, with exclusion "authors", adds) its clipped gradient.
    preclip: bool = False
    # SAM's perturbed pass: "reuse" the clean pass's noise, augmentation and target distribution,
    # priorities from the clean pass; "fresh" (the authors' code): new noise in both networks, a
    # new augmentation, the double-Q target recomputed at the perturbed point, and the replay's
    # priorities from the perturbed pass.
    perturbed_pass: str = "reuse"
    # From the first Reset on, SAM perturbs and steps the whole network (the authors' code: the
    # optimizer rebuilt at a Reset no longer sees the head's exclusion).
    all_after_reset: bool = False


@dataclass
class ResetConfig:
    enabled: bool = False
    interval: int = 40_000  # in updates, or agent steps with interval_unit="agent_steps"
    # What the interval counts: "updates" (the Atari code's optimize steps) or "agent_steps" (the
    # authors' DMC script: every interval-th loop step but the last, whatever the replay ratio).
    interval_unit: str = "updates"
    scope: str = "head"  # "head" (paper) or "all"
    reset_target: bool = True
    # Shrink-and-perturb of the encoder at each reset, θ ← s·θ + (1 − s)·θ_new, at replay ratios
    # >= encoder_shrink_min_replay_ratio (the authors do it at 4 and 8).
    encoder_shrink: float = 0.6
    encoder_shrink_min_replay_ratio: float = 4.0
    # Optimizer state cleared at a Reset: "touched" (the reset and shrunk parameters') or "all"
    # (the authors' code rebuilds the optimizer: every moment and step count starts afresh).
    optimizer_state: str = "touched"
    # What a shrink-and-perturb pulls LayerNorm parameters toward: "init" (a fresh LayerNorm,
    # (1, 0)) or "online" (the authors' code: their LayerNorm has no reset_parameters, so the
    # online LN stays and the target LN moves toward the online one).
    layer_norm_toward: str = "init"


@dataclass
class AgentConfig:
    gamma: float = 0.99
    n_step: int = 10
    batch_size: int = 32
    lr: float = 1.414e-4  # √2·1e-4
    adam_eps: float = 1.5e-4
    max_grad_norm: float = 10.0
    target_ema: float = 0.99  # target ← ema·target + (1 − ema)·online, every update
    double_q: bool = True
    augment: bool = True  # random shift (pad 4) + intensity (scale 0.05), on s and s′
    shift_pad: int = 4
    intensity_scale: float = 0.05
    act_with_target: bool = True
    eval_epsilon: float = 0.001
    train_epsilon: float = 0.0  # noisy nets explore once learning starts
    prioritized: bool = True
    priority_exponent: float = 0.5
    importance_exponent_start: float = 0.4  # annealed linearly to 1 over training
    replay_capacity: int = 100_000
    # The importance exponent goes from importance_exponent_start to 1 over "agent_steps" (the
    # whole run, warm-up included) or "updates" (the authors': over the run's updates, from the
    # first update).
    importance_anneal: str = "agent_steps"


@dataclass
class TrainConfig:
    steps: int = 100_000  # agent steps (Atari: 400k frames)
    learning_starts: int = 2_000
    replay_ratio: float = 2.0  # updates per agent step
    eval_episodes: int = 100
    eval_envs: int = 10  # evaluation episodes run in lockstep batches of this many
    eval_interval: int = 0  # agent steps between intermediate evaluations; 0: only at the end
    log_interval: int = 1_000
    metrics_interval: int = 10_000  # plasticity metrics (active units, ...) every N agent steps
    checkpoint_interval: int = 10_000
    threads: int = 0  # torch intra-op threads; 0: one, on CPU and GPU (plastic.runtime says why)
    # Arithmetic of the networks' passes: "fp32", "bf16" or "fp16" (autocast; parameters,
    # gradients, optimizer state and the loss stay fp32; fp16 with dynamic loss scaling, for CUDA).
    # The Rainbow agent (Atari, MinAtar) reads it.
    precision: str = "fp32"
    # Replay the Rainbow update as one CUDA graph (CUDA only; fp32 or bf16): the update's ~1,300
    # small kernels are launched as one, which is what a batch-32 update costs on a GPU.
    cuda_graph: bool = False
    # Flush subnormal floats to zero on the CPU while training: Adam's moments of weights without
    # gradients pass through them, and x86 CPUs compute them slowly (plastic.runtime says why).
    flush_denormal: bool = True
    eval_at_start: bool = False  # evaluate once after the first agent step too (the authors' DMC)
    # Checkpoints hold the replay's frames zlib-compressed: an Atari-100k replay of about 0.7 GB
    # in tens of MB (62 MB for Boxing played at random), for a few seconds of one core per
    # checkpoint (ReplayBuffer.state_dict; benchmarks/bench_checkpoint.py). false: raw frames,
    # faster to write and read, 10-40x larger.
    compress_replay: bool = True
    # Keep a finished run's final checkpoint (Atari: about 0.2 GB, the agent's state and the
    # compressed replay), so that a larger train.steps can extend the run later; off: deleted
    # once summary.json is written.
    keep_final_checkpoint: bool = False
    wandb_project: str = ""  # log to Weights & Biases too (needs `pip install wandb`); "" = off


@dataclass
class EnvConfig:
    # Atari and MinAtar only (agent steps; Atari: 108k frames). DMC tasks end at their own time
    # limit, 1000 env steps.
    max_episode_steps: int = 27_000
    obs: str = "pixels"  # DMC: "pixels" (64x64 RGB, 3 stacked frames) or "state"
    action_repeat: int = 0  # DMC: env steps per agent step; 0 = the task's (plastic.envs.dmc_tasks)
    # Atari and MinAtar sticky actions. 0 is the Atari-100k protocol; MinAtar's own default, used
    # by published MinAtar results, is 0.1. Atari snapshots cannot hold ALE's sticky action, so
    # Atari runs with sticky actions need train.checkpoint_interval=0.
    repeat_action_probability: float = 0.0
    # Atari 210x160 -> 84x84: "area" (averaging, as Dopamine) or "bilinear" (the authors' code).
    resize: str = "area"
    # Atari episode cap: "frames" (ALE's limit of 4 x max_episode_steps frames, start no-ops
    # included; the episode is truncated) or "agent_steps" (the authors': counted from the end of
    # the start no-ops, the game ends on its max_episode_steps + 1-th step, which is terminal).
    time_limit: str = "frames"
    # Atari: one NOOP frame (reward dropped) at the start of a game and after each lost life but
    # the last, whose screen alone (not max-pooled) is the next frame (the authors' env).
    life_loss_noop: bool = False


@dataclass
class SACConfig:
    """DrQ's settings in PLASTIC's DMC experiments (the authors' configs/drq.py and train_pixels.py)."""

    actor_lr: float = 1e-4
    critic_lr: float = 1e-4
    alpha_lr: float = 1e-4
    adam_eps: float = 1e-8
    batch_size: int = 512
    gamma: float = 0.99  # for the replay's n-step discount; the update reads Batch.discount
    n_step: int = 1
    replay_capacity: int = 100_000
    critic_tau: float = 0.005  # target ← (1 − τ)·target + τ·critic, encoder included
    # The authors (jaxrl) update the target, the actor and α after every critic update; the
    # original DrQ code does the actor and the target every 2nd update.
    target_update_every: int = 1
    actor_update_every: int = 1
    init_temperature: float = 0.1  # α at the start and after every Reset
    target_entropy_per_dim: float = -1.0  # target entropy = this × |A|, i.e. −|A|
    encoder_channels: str = "32-64-128-256"  # 3×3 stride-2 convs, SAME-sized padding
    latent_dim: int = 50  # projection (Linear, LayerNorm, tanh) in each of actor and critic
    hidden: int = 256  # MLP units per layer (CReLU doubles the features the next layer reads)
    hidden_layers: int = 2
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    augment: bool = True  # random shift of s and s′ (pixel observations only)
    shift_pad: int = 4
    max_grad_norm: float = 0.0  # clip critic and actor gradients to this norm; 0: no clipping
    # State observations (not in the paper): an MLP encoder so that SAM and LN have a target.
    state_encoder_hidden: int = 256
    state_encoder_layers: int = 1  # 0: identity encoder
    # Pixel encoder padding: "symmetric" (1 on every side) or "same" (flax's SAME, the authors':
    # 0 before, 1 after for a 3x3 stride-2 conv on an even size).
    conv_padding: str = "symmetric"
    log_std_gain: float = 1.4142135623730951  # orthogonal init gain of the actor's log-std layer


@dataclass
class Config:
    suite: str = "atari"
    game: str = "pong"
    preset: str = "drq"
    seed: int = 0
    device: str = "auto"  # "auto": cuda when available, else cpu
    # "authors": the update the authors' code runs (which produced the paper's numbers); "intent":
    # the method as the paper states it. A profile sets the fidelity knobs (FIDELITY_PROFILES);
    # each stays its own key, and an explicit --set of one wins over the profile.
    fidelity: str = "intent"
    env: EnvConfig = field(default_factory=EnvConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)  # DMC reads LN, CReLU, input_scale
    sam: SAMConfig = field(default_factory=SAMConfig)
    reset: ResetConfig = field(default_factory=ResetConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)  # Rainbow: Atari, MinAtar
    train: TrainConfig = field(default_factory=TrainConfig)
    sac: SACConfig = field(default_factory=SACConfig)  # DrQ (SAC): DeepMind Control

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        config = cls()
        apply_overrides(config, flatten(data))
        return config

    def validate(self) -> Config:
        """Raise ``ValueError`` naming the first key whose value is out of its valid range."""
        values = flatten(self.to_dict())
        for key, valid in RANGES.items():
            if values[key] not in valid:
                raise ValueError(f"{key} = {values[key]!r} is out of range; valid: {valid}")
        for key in CHOICES:
            check_choice(key, values[key])
        for key in UNBOUNDED:
            if not math.isfinite(values[key]):
                raise ValueError(f"{key} = {values[key]!r} must be a finite number")
        for low, high in (("network.v_min", "network.v_max"), ("sac.log_std_min", "sac.log_std_max")):
            if values[low] >= values[high]:
                raise ValueError(f"{low} ({values[low]:g}) must be below {high} ({values[high]:g})")
        for section in ("agent", "sac"):
            capacity, n_step = values[f"{section}.replay_capacity"], values[f"{section}.n_step"]
            if capacity <= n_step:
                raise ValueError(f"{section}.replay_capacity ({capacity}) must exceed {section}.n_step "
                                 f"({n_step}): an n-step transition needs n + 1 stored steps")
        self._check_encoder_fits()
        if self.suite == "dmc" and self.train.precision != "fp32":
            raise ValueError(f"train.precision = {self.train.precision!r}: only the Rainbow agent "
                             "(atari, minatar) has mixed precision; DMC runs fp32")
        if self.train.cuda_graph and self.train.precision == "fp16":
            raise ValueError("train.cuda_graph needs train.precision fp32 or bf16: fp16's loss "
                             "scaling reads the gradients' finiteness on the host every update")
        if self.suite == "atari" and self.env.repeat_action_probability > 0 \
                and self.train.checkpoint_interval > 0:
            raise ValueError(
                "env.repeat_action_probability > 0 on Atari needs train.checkpoint_interval=0: "
                "ale-py does not save the sticky action in its state, so a checkpoint could not "
                "resume exactly")
        return self

    def _check_encoder_fits(self) -> None:
        suite = get_suite(self.suite)
        size = suite.frame_size  # None: the agent's encoder is its own (DMC's DrQ: sac.*)
        needed = ENCODER_MIN_FRAME_SIZE.get(self.network.encoder, 1)
        if size is not None and size < needed:
            raise ValueError(
                f"network.encoder = {self.network.encoder!r} needs frames of at least "
                f"{needed}x{needed} pixels (its convolutions shrink smaller ones to nothing); "
                f"{self.suite} frames are {size}x{size}: use network.encoder="
                f"{suite.encoder}, the {self.suite} default")


# The smallest frame side each encoder accepts (the Nature CNN's 8/4, 4/2 and 3/1 convolutions
# need 36 pixels).
ENCODER_MIN_FRAME_SIZE = {"nature": 36, "minatar": 3}


def check_agent_section(suite: str, keys: Iterable[str]) -> None:
    """Refuse a key of the config section of an agent that ``suite`` does not run (each agent owns
    one: ``AgentKind.config_section``): it would be silently ignored."""
    own = get_suite(suite).agent
    others = {s.agent.config_section: s.agent for s in SUITES.values()
              if s.agent.config_section != own.config_section}
    for key in keys:
        section, _, leaf = key.partition(".")
        if section not in others:
            continue
        other = others[section]
        suites = ", ".join(name for name, s in SUITES.items() if s.agent.config_section == section)
        twin = f"{own.config_section}.{leaf}"
        hint = f"; did you mean {twin}?" if twin in valid_keys() else ""
        raise ValueError(f"{key} is a setting of the {other.name} agent (suites {suites}), "
                         f"which {suite} does not run: {suite} runs {own.name}, whose settings "
                         f"are {own.config_section}.*{hint}")


# Keys that change only what is logged, how often, where or how fast (not what a run computes,
# beyond the order of float sums or values below 1e-38): a run directory resumes with other
# values for them.
LOGGING_KEYS = frozenset({
    "device", "train.log_interval", "train.metrics_interval", "train.checkpoint_interval",
    "train.threads", "train.wandb_project", "train.keep_final_checkpoint", "train.cuda_graph",
    "train.flush_denormal", "train.compress_replay",
})


def saved_config_differences(saved: dict[str, Any], wanted: Config) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, wanted value)}`` for each key in which a run directory's config.json
    differs from ``wanted``, keys that only change logging (``LOGGING_KEYS``) left out. A key newer
    than the saved run counts as its default, the behaviour the run had; a game saved under
    another spelling of its name (an Atari run from before CamelCase names were stored in
    snake_case) counts as the name it has now."""
    old = {**flatten(Config().to_dict()), **flatten(saved)}
    if old.get("suite") in SUITES and isinstance(old.get("game"), str):
        old["game"] = SUITES[old["suite"]].game_name(old["game"])
    new = flatten(wanted.to_dict())
    return {key: (old.get(key), new.get(key)) for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key) and key not in LOGGING_KEYS}


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric key: finite numbers from ``low`` to ``high``."""

    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False  # exclude ``low`` itself
    open_high: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below

    def __str__(self) -> str:
        low, high = (int(x) if float(x).is_integer() else x for x in (self.low, self.high))
        if self.high == math.inf:
            return f"{'>' if self.open_low else '>='} {low}"
        return f"{'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"


_POSITIVE, _NON_NEGATIVE, _AT_LEAST_1, _UNIT = Range(0, open_low=True), Range(0), Range(1), Range(0, 1)

RANGES: dict[str, Range] = {
    "seed": Range(0, 2**31 - 1),  # env seeds must fit the emulators' 32-bit generators
    "env.max_episode_steps": _AT_LEAST_1,
    "env.action_repeat": _NON_NEGATIVE,  # 0: the task's
    "env.repeat_action_probability": _UNIT,
    "network.hidden": _AT_LEAST_1,
    "network.noisy_std": _NON_NEGATIVE,
    "network.num_atoms": Range(2),
    "network.input_scale": _POSITIVE,
    "network.dueling_grad_scale": _NON_NEGATIVE,
    "sac.log_std_gain": _POSITIVE,
    "sam.rho": _NON_NEGATIVE,
    "reset.interval": _AT_LEAST_1,
    "reset.encoder_shrink": Range(0, 1, open_high=True),
    "reset.encoder_shrink_min_replay_ratio": _NON_NEGATIVE,
    **{f"agent.{k}": _UNIT for k in ("gamma", "target_ema", "eval_epsilon", "train_epsilon",
                                     "importance_exponent_start")},
    **{f"agent.{k}": _AT_LEAST_1 for k in ("n_step", "batch_size", "replay_capacity")},
    **{f"agent.{k}": _POSITIVE for k in ("lr", "adam_eps", "max_grad_norm")},
    **{f"agent.{k}": _NON_NEGATIVE for k in ("shift_pad", "intensity_scale", "priority_exponent")},
    **{f"train.{k}": _AT_LEAST_1 for k in ("steps", "eval_episodes", "eval_envs", "log_interval")},
    **{f"train.{k}": _NON_NEGATIVE for k in ("learning_starts", "eval_interval", "metrics_interval",
                                             "checkpoint_interval", "threads")},  # intervals: 0 = off
    "train.replay_ratio": _POSITIVE,
    **{f"sac.{k}": _POSITIVE for k in ("actor_lr", "critic_lr", "alpha_lr", "adam_eps",
                                       "init_temperature")},
    **{f"sac.{k}": _AT_LEAST_1 for k in ("batch_size", "n_step", "replay_capacity",
                                         "target_update_every", "actor_update_every", "latent_dim",
                                         "hidden", "hidden_layers", "state_encoder_hidden")},
    **{f"sac.{k}": _NON_NEGATIVE for k in ("shift_pad", "max_grad_norm", "state_encoder_layers")},
    "sac.gamma": _UNIT,
    "sac.critic_tau": Range(0, 1, open_low=True),
}
# Numeric keys any finite value suits (the two bounds of a pair are checked against each other).
UNBOUNDED = frozenset({"network.v_min", "network.v_max", "sac.target_entropy_per_dim",
                       "sac.log_std_min", "sac.log_std_max"})


CHOICES: dict[str, tuple[str, ...]] = {
    "suite": tuple(SUITES),
    "env.obs": ("pixels", "state"),
    "network.encoder": ("nature", "minatar"),
    "network.layer_norm_scope": ("encoder", "head", "all"),  # "encoder": the paper's
    "network.crelu_scope": ("head", "encoder", "all"),  # "head": the paper's
    "sam.scope": ("encoder", "head", "all"),
    "sam.exclusion": ("clean", "authors", "authors-dmc"),
    "reset.scope": ("head", "all"),
    # as plastic.reset.RESET_INTERVAL_UNITS, written again: importing it would load torch, which
    # `plastic --help` must not
    "reset.interval_unit": ("updates", "agent_steps"),
    "fidelity": ("authors", "intent"),
    "train.precision": ("fp32", "bf16", "fp16"),
    "sam.perturbed_pass": ("reuse", "fresh"),
    "reset.optimizer_state": ("touched", "all"),
    "reset.layer_norm_toward": ("init", "online"),
    "agent.importance_anneal": ("agent_steps", "updates"),
    "env.resize": ("area", "bilinear"),
    "env.time_limit": ("frames", "agent_steps"),
    "sac.conv_padding": ("symmetric", "same"),
}


def check_choice(key: str, value: Any) -> None:
    """Raise ``ValueError`` naming the valid values if ``value`` is not one of ``key``'s choices."""
    if key in CHOICES and value not in CHOICES[key]:
        raise ValueError(f"{key}: unknown value {value!r}; valid: {', '.join(CHOICES[key])}")


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def valid_keys(config: Config | None = None) -> list[str]:
    return sorted(flatten((config or Config()).to_dict()))


def close_matches(word: str, candidates: list[str], n: int = 3) -> list[str]:
    """The candidates closest to ``word`` (difflib), then those ending in its last dotted part."""
    leaf = word.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(word, candidates, n=n, cutoff=0.6)
    same_leaf = [c for c in candidates if c.rsplit(".", 1)[-1] == leaf]
    return list(dict.fromkeys([*close, *same_leaf]))[:n]


def unknown_key_message(key: str) -> str:
    """'unknown config key': the closest keys first, then the keys of the section it names (or
    the top-level keys and section names), not all of them."""
    keys = valid_keys()
    sections = sorted({k.split(".")[0] for k in keys if "." in k})
    section = key.split(".")[0]
    suggestions = [] if key in sections else close_matches(key, keys)
    note = " (a section, not a key)" if key in sections else (
        f" (did you mean {' or '.join(suggestions)}?)" if suggestions else "")
    parts = [f"unknown config key {key!r}{note}"]
    if section in sections:
        parts.append(f"valid keys in {section}: {', '.join(k for k in keys if k.startswith(section + '.'))}")
    else:
        top = [k for k in keys if "." not in k]
        parts.append(f"valid keys: {', '.join(top)}, or SECTION.KEY with SECTION one of "
                     f"{', '.join(sections)}")
    return "; ".join(parts)


def coerce(key: str, value: Any, kind: Any) -> Any:
    """``value`` (a ``--set`` string or a JSON value) as the type ``kind`` of config key ``key``;
    ``X | None`` takes "none"/"null" or None as None. One parser for every typed config."""
    options = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else ()
    if type(None) in options:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            return None
        (kind,) = [option for option in options if option is not type(None)]
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if kind is bool:
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError(f"{key}: expected true or false, got {value!r}")
        try:
            return kind(float(text)) if kind is int and "e" in text.lower() else kind(text)
        except ValueError:
            raise ValueError(f"{key}: expected {kind.__name__}, got {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ValueError(f"{key}: expected {kind.__name__}, got {value!r}")
    return value


def apply_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """Set dotted keys in place; unknown keys and bad values raise ``ValueError``."""
    for key, value in overrides.items():
        *path, leaf = key.split(".")
        node: Any = config
        for part in path:
            node = getattr(node, part, None)
            if node is None or not dataclasses.is_dataclass(node):
                node = None
                break
        fields = {f.name: f for f in dataclasses.fields(node)} if node is not None else {}
        if leaf not in fields or dataclasses.is_dataclass(getattr(node, leaf)):
            raise ValueError(unknown_key_message(key))
        kind = typing.get_type_hints(type(node))[leaf]
        coerced = coerce(key, value, kind)
        check_choice(key, coerced)
        setattr(node, leaf, coerced)
    return config


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """``["sam.rho=0.05", ...]`` -> ``{"sam.rho": "0.05"}``."""
    result = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        result[key.strip()] = value
    return result
