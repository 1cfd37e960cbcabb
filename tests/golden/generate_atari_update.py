"""Golden fixtures of the Atari-100k update, made by running the PLASTIC authors' own code.

Their code never enters our repository; this script imports it from a checkout and records what
it computes. To get the checkout, fetch github.com/dojeon-ai/PLASTIC (e.g. with the search tool's
``fetch``, which gives a bare mirror) and export it outside our repo::

    mkdir -p /work/authors && git --git-dir=MIRROR archive HEAD | tar -x -C /work/authors

Their Atari code also imports einops, omegaconf and dotmap (``pip install einops omegaconf
dotmap`` into our venv); wandb, kornia and gym are replaced here by empty stand-ins (nothing of
them runs in an update). Then::

    PLASTIC_AUTHORS_DIR=/work/authors .venv/bin/python tests/golden/generate_atari_update.py

What runs is their training loop itself (``BaseAgent.train`` with ``RAINBOW.forward``, their SAM
class, their Reset and optimizer rebuild), on a scripted environment and replay: every update gets
a fixed batch, and every random draw of an update (noisy-layer noise of both networks,
random-shift offsets and intensity factors, for the clean and the perturbed pass alike) is forced
from numbers this script draws and saves. The fresh weights their Reset draws are recorded, so our
side can be given the same ones. The network is theirs at a reduced size (44×44 inputs, a head of
16 hidden units) so that the fixtures stay small.

Each case is saved as ``fixtures/atari_update/CASE.pt`` (``torch.save`` of tensors and numbers):
the settings, the initial online weights, per update the batch, the draws and what their update
produced — loss, the clean and perturbed per-sample KL (their priorities), and a digest of every
online and target parameter, final gradient and Adam moment (``digest`` below). Running the script
again gives identical files.
"""

from __future__ import annotations

import copy
import os
import random
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from golden_digest import digest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "atari_update"
OBS_SHAPE = (4, 44, 44)  # their Nature CNN gives 64·2·2 = 256 features
NUM_ACTIONS, NUM_ATOMS, HIDDEN, BATCH = 4, 51, 16, 4

# name -> (their hydra-style overrides, replay ratio, env steps, updates to keep)
CASES: dict[str, dict[str, Any]] = {
    "drq": dict(agent={}, model={}, replay_ratio=2, env_steps=1, keep=2),
    # PLASTIC at replay ratio 2, Resets after updates 2 and 4: from update 3 on, SAM perturbs and
    # steps everything. (Their loop skips a Reset due in the last env step: 6 run, 5 are kept.)
    "plastic_rr2": dict(
        agent={"optimizer": {"type": "sam", "base_optimizer": "Adam", "rho": 0.1, "adaptive": False,
                             "sam_head": False},
               "reset_per_optimize_step": 2, "reset_type": "llf", "reset_target": True,
               "shrink_perturb": False,
               "clip_grad_norm": 1.0},  # below most gradient norms here: clipping acts
        model={"policy_activation": "CReLU_output", "backbone_normalization": "layernorm"},
        replay_ratio=2, env_steps=3, keep=5),
    # PLASTIC† at replay ratio 4: LN + Reset with shrink-and-perturb (0.6) after update 3.
    "plastic_dagger_rr4": dict(
        agent={"reset_per_optimize_step": 3, "reset_type": "llf", "reset_target": True,
               "shrink_perturb": True, "shrink_perturb_alpha": 0.6},
        model={"backbone_normalization": "layernorm"},
        replay_ratio=4, env_steps=2, keep=4),
}


# ----------------------------------------------------------------------------- their code
def import_authors_code(root: Path) -> SimpleNamespace:
    """Import their Atari package (``src``) with stand-ins for wandb, kornia and gym."""
    for name in ("wandb", "gym", "kornia", "kornia.augmentation"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["kornia"].augmentation = sys.modules["kornia.augmentation"]
    sys.path.insert(0, str(root / "atari"))
    from src.agents.rainbow import RAINBOW
    from src.common import augmentation
    from src.common.train_utils import LinearScheduler
    from src.models import build_model
    from src.models.backbones.base import BaseBackbone
    from src.models.policies import rainbow_policy
    from src.models.policies.base import BasePolicy

    return SimpleNamespace(RAINBOW=RAINBOW, augmentation=augmentation, build_model=build_model,
                           LinearScheduler=LinearScheduler,
                           NoisyLinear=rainbow_policy.NoisyLinear, BaseBackbone=BaseBackbone,
                           BasePolicy=BasePolicy)


def agent_config(case: dict[str, Any], obs_shape: tuple[int, ...] = OBS_SHAPE,
                 num_actions: int = NUM_ACTIONS, batch_size: int = BATCH) -> dict[str, Any]:
    """Their configs/agent/drq.yaml with the case's overrides, as their scripts pass them."""
    cfg: dict[str, Any] = dict(
        type="rainbow", num_timesteps=case["env_steps"], obs_shape=(obs_shape[0], 1, *obs_shape[1:]),
        action_size=num_actions, aug_types=["random_shift", "intensity"], aug_target=True,
        optimizer={"type": "adam", "lr": 0.0001414, "weight_decay": 0.0, "betas": [0.9, 0.999],
                   "eps": 0.00015},
        eps_scheduler={"initial_value": 1.0, "final_value": 0.0, "step_size": 1.0},
        noise_scheduler={"initial_value": 1.0, "final_value": 1.0, "step_size": 98000},
        exploration_model="target", min_buffer_size=1, optimize_per_env_step=case["replay_ratio"],
        train_online_mode="train", train_target_mode="train", v_min=-10, v_max=10, double=True,
        gamma=0.99, batch_size=batch_size, clip_grad_norm=10, target_tau=0.99, update_state_dict=False,
        reset_per_optimize_step=-1, reset_target=True, reset_type="llf", reset_weight_type="random",
        shrink_perturb=False, shrink_perturb_alpha=0.6, evaluate_freq=-1, rollout_freq=-1,
        log_freq=10**9, eval_eps=0.001, pd_per_optimize_step=-1,
    )
    for key, value in case["agent"].items():
        if isinstance(value, dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def model_config(case: dict[str, Any], obs_shape: tuple[int, ...] = OBS_SHAPE,
                 num_actions: int = NUM_ACTIONS, hidden: int = HIDDEN) -> dict[str, Any]:
    """Their configs/model/nature.yaml (backbone nature, identity head, rainbow policy)."""
    model = case["model"]
    return {
        "backbone": {"type": "nature", "obs_shape": (obs_shape[0], 1, *obs_shape[1:]),
                     "action_size": num_actions,
                     "init_type": None, "renormalize": False, "activation": "ReLU",
                     "normalization": model.get("backbone_normalization", "None")},
        "head": {"type": "identity", "in_dim": None},
        "policy": {"type": "rainbow", "in_dim": None, "hid_dim": hidden, "action_size": num_actions,
                   "num_atoms": NUM_ATOMS, "noisy_std": 0.5, "duel": True, "width": 1,
                   "activation": model.get("policy_activation", "ReLU"), "normalization": "None"},
    }


# ------------------------------------------------------------------- draws, batches, names
NOISY_LAYERS = ["value.0", "value.2", "advantage.0", "advantage.2"]  # their fc_v, then fc_adv


def their_name(ours: str) -> str:
    """Our parameter name -> theirs (encoder.* = backbone.layers.*, head.value = policy.fc_v)."""
    if ours.startswith("encoder."):
        return "backbone.layers." + ours[len("encoder."):]
    return ours.replace("head.value.", "policy.fc_v.").replace("head.advantage.", "policy.fc_adv.")


def scaled(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.sign(x) * np.sqrt(np.abs(x))).float()


def draw_pass(rng: np.random.Generator, first_width: int) -> dict[str, torch.Tensor]:
    """One forward's draws: noise f(ε) of both networks' noisy layers, shifts, intensities."""
    shapes = {"value.0": (256, first_width), "value.2": (HIDDEN, NUM_ATOMS),
              "advantage.0": (256, first_width), "advantage.2": (HIDDEN, NUM_ACTIONS * NUM_ATOMS)}
    draws: dict[str, torch.Tensor] = {}
    for net in ("online", "target"):
        for layer in NOISY_LAYERS:
            size_in, size_out = shapes[layer]
            draws[f"{net}.{layer}.in"] = scaled(rng.standard_normal(size_in))
            draws[f"{net}.{layer}.out"] = scaled(rng.standard_normal(size_out))
    for which in ("obs", "next_obs"):
        draws[f"{which}.shift"] = torch.from_numpy(rng.integers(0, 9, (BATCH, 2)))  # (rows, columns)
        draws[f"{which}.intensity"] = torch.from_numpy(
            np.clip(rng.standard_normal(BATCH), -2.0, 2.0)).float()
    return draws


def make_batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
    done = (rng.random(BATCH) < 0.25).astype(np.float32)
    return {
        "obs": torch.from_numpy(rng.integers(0, 256, (BATCH, *OBS_SHAPE), dtype=np.uint8)),
        "next_obs": torch.from_numpy(rng.integers(0, 256, (BATCH, *OBS_SHAPE), dtype=np.uint8)),
        "action": torch.from_numpy(rng.integers(0, NUM_ACTIONS, BATCH)),
        "return": torch.from_numpy(rng.normal(0.0, 2.0, BATCH).astype(np.float32)),
        "done": torch.from_numpy(done),
        "weight": torch.from_numpy(rng.uniform(0.3, 1.0, BATCH).astype(np.float32)),
    }


def their_batch(batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Our batch in their replay's form: (n, t=1, f, c=1, h, w) floats in [0, 1]."""
    def frames(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(x.numpy().astype(np.float32) / 255.0)[:, None, :, None]

    return {"idxs": np.arange(len(batch["obs"])), "obs": frames(batch["obs"]), "act": batch["action"],
            "return": batch["return"], "done": batch["done"], "next_obs": frames(batch["next_obs"]),
            "weights": batch["weight"]}


# ------------------------------------------------------------------------ scripted world
class ScriptedBuffer:
    """Their replay's interface: fixed batches in order; records the priorities written."""

    name = "per_buffer"
    n_step = 10

    def __init__(self, batches: list[dict[str, Any]]) -> None:
        self.batches, self.priorities = list(batches), []

    def store(self, *args: Any) -> None:
        pass

    def sample(self, batch_size: int, mode: str = "train") -> dict[str, Any]:
        return self.batches.pop(0)

    def update_priorities(self, idxs: np.ndarray, priorities: np.ndarray) -> None:
        self.priorities.append(torch.from_numpy(np.array(priorities, dtype=np.float32)))

    def encode_obs(self, obs: np.ndarray, prediction: bool = False) -> torch.Tensor:
        return torch.from_numpy(np.asarray(obs, np.float32) / 255.0)[None, None]


class ScriptedEnv:
    def __init__(self, obs_shape: tuple[int, ...] = OBS_SHAPE) -> None:
        self.obs_shape = obs_shape

    def reset(self) -> np.ndarray:
        return np.zeros((self.obs_shape[0], 1, *self.obs_shape[1:]), np.uint8)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, Any]:
        return self.reset(), 0.0, False, SimpleNamespace(traj_done=False)


class Recorder:
    """Their logger's interface; after every update, records what the update produced."""

    def __init__(self) -> None:
        self.agent: Any = None
        self.updates: list[dict[str, Any]] = []

    def step(self, *args: Any, **kwargs: Any) -> None:
        pass

    def write_log(self, *args: Any, **kwargs: Any) -> None:
        pass

    def update_log(self, mode: str, **logs: Any) -> None:
        agent = self.agent
        record: dict[str, Any] = {"loss": float(logs["loss"]), "grad_norm": float(logs["param_grad_norm"])}
        online = dict(agent.model.named_parameters())
        target = dict(agent.target_model.named_parameters())
        adam = agent.optimizer.base_optimizer if hasattr(agent.optimizer, "base_optimizer") \
            else agent.optimizer
        for ours in OUR_NAMES:
            theirs = their_name(ours)
            param = online[theirs]
            record[f"online/{ours}"] = digest(param, ours)
            record[f"target/{ours}"] = digest(target[theirs], ours)
            record[f"grad/{ours}"] = digest(param.grad, ours)
            state = adam.state.get(param, {})
            for moment in ("exp_avg", "exp_avg_sq"):
                if moment in state:
                    record[f"{moment}/{ours}"] = digest(state[moment], ours)
        record["adam_steps"] = sorted({int(s["step"]) for s in adam.state.values() if "step" in s})
        self.updates.append(record)


OUR_NAMES: list[str] = []


# ---------------------------------------------------------------------------- one case
def run_case(code: SimpleNamespace, name: str, case: dict[str, Any]) -> dict[str, Any]:
    from dotmap import DotMap
    from omegaconf import OmegaConf

    seed = sorted(CASES).index(name)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    model = code.build_model(OmegaConf.create(model_config(case)))
    crelu = case["model"].get("policy_activation", "ReLU") == "CReLU_output"
    first_width = HIDDEN // 2 if crelu else HIDDEN
    rng = np.random.default_rng(1000 + seed)
    sam = case["agent"].get("optimizer", {}).get("type") == "sam"
    total = case["env_steps"] * case["replay_ratio"]
    batches = [make_batch(rng) for _ in range(total)]
    draws = [{"clean": draw_pass(rng, first_width), **({"perturbed": draw_pass(rng, first_width)}
                                                       if sam else {})} for _ in range(total)]

    # Forced draws, consumed in their order: online noise (fc_v, fc_adv; in, out), target noise,
    # then s (shift, intensity) and s′, for each forward (the clean one, then SAM's).
    noise_queue: list[torch.Tensor] = []
    aug_queue: list[torch.Tensor] = []
    for update in draws:
        for pass_ in ("clean", "perturbed"):
            if pass_ not in update:
                continue
            d = update[pass_]
            for net in ("online", "target"):
                for layer in NOISY_LAYERS:
                    noise_queue += [d[f"{net}.{layer}.in"], d[f"{net}.{layer}.out"]]
            for which in ("obs", "next_obs"):
                columns_rows = d[f"{which}.shift"][:, [1, 0]]  # their grid offsets are (x, y)
                aug_queue += [columns_rows.view(BATCH, 1, 1, 2), d[f"{which}.intensity"].view(BATCH, 1, 1, 1)]

    def forced_scale_noise(self: Any, size: int) -> torch.Tensor:
        value = noise_queue.pop(0)
        assert value.numel() == size, (value.numel(), size)
        return value.clone()

    class ForcedTorch:
        def __getattr__(self, attr: str) -> Any:
            return getattr(torch, attr)

        def randint(self, low: int, high: int, size: tuple, device: Any = None,
                    dtype: Any = None) -> torch.Tensor:
            value = aug_queue.pop(0)
            assert tuple(value.shape) == tuple(size) and (low, high) == (0, 9)
            return value.to(dtype=dtype)

        def randn(self, size: tuple, device: Any = None) -> torch.Tensor:
            value = aug_queue.pop(0)
            assert tuple(value.shape) == tuple(size)
            return value.clone()

    fresh: list[dict[str, torch.Tensor]] = []

    def recording(reset_parameters: Any) -> Any:
        def wrapper(self: Any, **kwargs: Any) -> None:
            reset_parameters(self, **kwargs)
            fresh.append({k: v.detach().clone() for k, v in self.named_parameters()})
        return wrapper

    logger = Recorder()
    buffer = ScriptedBuffer([their_batch(b) for b in batches])
    cfg = DotMap(agent_config(case))
    aug = code.augmentation.Augmentation(obs_shape=cfg.obs_shape, aug_types=list(cfg.aug_types))
    agent = code.RAINBOW(cfg=cfg, device=torch.device("cpu"), train_env=ScriptedEnv(), eval_env=None,
                         logger=logger, buffer=buffer, aug_func=aug, model=model)
    logger.agent = agent
    initial = {k: v.detach().clone() for k, v in agent.model.named_parameters()}

    originals = (code.NoisyLinear._scale_noise, code.augmentation.torch,
                 code.BaseBackbone.reset_parameters, code.BasePolicy.reset_parameters)
    code.NoisyLinear._scale_noise = forced_scale_noise
    code.augmentation.torch = ForcedTorch()
    code.BaseBackbone.reset_parameters = recording(originals[2])
    code.BasePolicy.reset_parameters = recording(originals[3])
    try:
        agent.train()
    finally:
        (code.NoisyLinear._scale_noise, code.augmentation.torch,
         code.BaseBackbone.reset_parameters, code.BasePolicy.reset_parameters) = originals
    assert not noise_queue and not aug_queue, "every forced draw is consumed"

    per_update = 2 if sam else 1
    keep = case["keep"]
    updates = logger.updates[:keep]
    for k, record in enumerate(updates):
        written = buffer.priorities[per_update * k: per_update * (k + 1)]
        record["kl_clean"] = written[0]
        record["kl_perturbed"] = written[-1] if sam else None
    # Each Reset rebuilt backbone and policy in one fresh copy: keep backbone + policy per Reset.
    resets = [{**{f"backbone.{k}": v for k, v in fresh[i].items()},
               **{f"policy.{k}": v for k, v in fresh[i + 1].items()}} for i in range(0, len(fresh), 2)]
    return {
        "case": name, "replay_ratio": case["replay_ratio"], "hidden": HIDDEN, "batch_size": BATCH,
        "obs_shape": OBS_SHAPE, "num_actions": NUM_ACTIONS, "agent": case["agent"],
        "model": case["model"], "max_grad_norm": float(case["agent"].get("clip_grad_norm", 10)),
        "reset_interval": case["agent"].get("reset_per_optimize_step", -1),
        "initial": {ours: initial[their_name(ours)] for ours in OUR_NAMES},
        "fresh": [{ours: reset[their_name(ours)] for ours in OUR_NAMES if their_name(ours) in reset}
                  for reset in resets],
        "batches": batches[:keep], "draws": draws[:keep], "updates": updates,
    }


def our_names(case: dict[str, Any]) -> list[str]:
    from plastic.agents.rainbow import build_q_network
    from plastic.configs.presets import build_config

    layer_norm = case["model"].get("backbone_normalization") == "layernorm"
    crelu = case["model"].get("policy_activation") == "CReLU_output"
    preset = "drq" + ("+ln" if layer_norm else "") + ("+crelu" if crelu else "")
    config = build_config("atari", "pong", preset, overrides={"network.hidden": HIDDEN})
    return [name for name, _ in build_q_network(config, OBS_SHAPE, NUM_ACTIONS).named_parameters()]


def main() -> int:
    root = os.environ.get("PLASTIC_AUTHORS_DIR")
    if not root or not (Path(root) / "atari" / "src" / "agents" / "base.py").is_file():
        print("set PLASTIC_AUTHORS_DIR to an export of github.com/dojeon-ai/PLASTIC (see the docstring)",
              file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    code = import_authors_code(Path(root))
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, case in CASES.items():
        OUR_NAMES[:] = our_names(case)
        result = run_case(code, name, copy.deepcopy(case))
        path = FIXTURES / f"{name}.pt"
        torch.save(result, path)
        print(f"{path}: {len(result['updates'])} updates, {len(result['fresh'])} resets, "
              f"{path.stat().st_size / 1e3:.0f} kB")
    # Their replay anneals the importance exponent with this scheduler over the run's updates
    # (agents/__init__.py sets its step_size to (num_timesteps - min_buffer_size) * replay ratio).
    updates = 50
    scheduler = code.LinearScheduler(initial_value=0.4, final_value=1.0, step_size=updates)
    betas = [scheduler.get_value() for _ in range(updates + 3)]
    torch.save({"updates": updates, "betas": betas}, FIXTURES / "importance_exponent.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
