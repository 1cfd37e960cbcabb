"""The PLASTIC authors' Atari update, run by their own code, timed beside ours in one process.

THEIR update is their training loop itself: ``BaseAgent.train`` of their ``RAINBOW`` agent (which
calls ``RAINBOW.forward``, their SAM class, gradient clipping, the target EMA and, at a Reset, their
``_build_optimizer``), imported from the checkout in ``PLASTIC_AUTHORS_DIR`` and driven as
``tests/golden/generate_atari_update.py`` drives it (its config builders, scripted environment,
logger and batch conversion are imported from there; wandb, kornia and gym are empty stand-ins).
Unlike the generator, nothing is forced: their noise and augmentation draws are their own.
Full Atari size: 84x84 inputs, 4 frames, 18 actions, batch 32, 512 hidden units, their
``configs/agent/drq.yaml``; ``plastic`` adds the overrides of their
``scripts/NeurIPS2023/drq_plastic_rr2.sh`` (SAM, rho 0.1, ``sam_head=False``; LayerNorm in the
backbone; ``CReLU_output`` in the policy; Reset every 40k updates).

How their update is isolated from their acting. Their update is inline in ``train()``; its
per-update body starts with ``buffer.sample`` and ends with ``logger.update_log`` (after the
optimizer step, the target EMA and the Reset check). Their loop is run with ONE environment step
and an unbounded number of updates per step (``num_timesteps=1``, ``optimize_per_env_step=10**9``),
so its only acting step (and the ``deepcopy`` at the start of ``train()``) happens before the
first update and none happens between updates. The loop runs in a worker thread; the scripted
replay's ``sample`` blocks until the timer lets one update through, and ``update_log`` hands
control back. One timed call is thus exactly one of their updates, sample to update_log, plus a
thread hand-over (tens of microseconds against updates of 100+ ms). ``sample`` converts a fixed
uint8 batch to their float frames each time, as their replay's ``encode_obs`` does (our update
also starts from uint8 frames); their sum-tree priority write is not timed (ours writes none
either). The script checks that no acting step ran while timing.

For ``plastic``, both states are timed: before the first Reset (SAM perturbs the backbone only) and
after it. Their "after" agent is driven through a real Reset by their own loop (two updates with a
Reset between them; their ``_build_optimizer`` has popped ``sam_head`` from the config, so the
rebuilt SAM perturbs and steps the whole network); ours is ``agent._after_reset()`` under the
``authors`` profile. The ``intent`` profile's update does not change at a Reset.

OUR update is ``RainbowAgent.update`` under both fidelity profiles: ``authors`` (the computation of
theirs) and ``intent``. Everything is timed in alternating rounds (``time_alternating``), so that a
change in the machine's load hits all alike; each thread count is its own pass. One JSON line per
preset x threads x state, after one line describing the machine.

    PLASTIC_AUTHORS_DIR=/work/authors python benchmarks/bench_against_authors.py --threads 1,2
    PLASTIC_AUTHORS_DIR=... python benchmarks/bench_against_authors.py --device cuda --threads 1
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from harness import SUITE_SHAPES, make_config, synthetic_batch, time_alternating, untimed_calls
from plastic.agents.rainbow import RainbowAgent
from plastic.configs.schema import Config, flatten
from plastic.replay.buffer import Batch
from plastic.runtime import SIMD_FLAGS, cpu_model, resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "golden"))
import generate_atari_update as golden  # noqa: E402

SHAPES = SUITE_SHAPES["atari"]
OBS_SHAPE: tuple[int, ...] = SHAPES["obs_shape"]  # (4, 84, 84)
NUM_ACTIONS: int = SHAPES["num_actions"]  # 18, the full action set
HIDDEN = 512  # their configs/model/policy/rainbow_d512_std05.yaml

# Their hydra overrides per preset (configs/agent/drq.yaml is the base: golden.agent_config).
THEIRS: dict[str, dict[str, Any]] = {
    "drq": {"agent": {}, "model": {}},
    "plastic": {  # scripts/NeurIPS2023/drq_plastic_rr2.sh
        "agent": {"optimizer": {"type": "sam", "base_optimizer": "Adam", "rho": 0.1, "adaptive": False,
                                "sam_head": False},
                  "reset_type": "llf", "reset_target": True, "reset_per_optimize_step": 40000,
                  "shrink_perturb": False},
        "model": {"policy_activation": "CReLU_output", "backbone_normalization": "layernorm"},
    },
}
PRECISIONS = ("fp32", "bf16", "fp16")


# ------------------------------------------------------------------- their loop, gated
class StopTimingError(Exception):
    """Raised in their loop's ``buffer.sample`` to end a gated run."""


class Gate:
    """Lets their training loop, running in a worker thread, through one update at a time."""

    def __init__(self) -> None:
        self.active = False
        self.stop = False
        self.go = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
        self.waiting = threading.Event()
        self.error: BaseException | None = None
        self.worker_threads = 0

    def enter(self) -> None:  # worker: at the start of each update (buffer.sample)
        if not self.active:
            return
        self.waiting.set()
        self.go.acquire()
        if self.stop:
            raise StopTimingError

    def leave(self) -> None:  # worker: at the end of each update (logger.update_log)
        if self.active:
            self.done.release()

    def update(self) -> None:  # main thread: one of their updates
        self.go.release()
        self.done.acquire()
        if self.error is not None:
            raise RuntimeError("their training loop failed") from self.error


class GatedBuffer(golden.ScriptedBuffer):
    """Their replay's interface: the same uint8 batch on every sample, converted to their float
    frames each time (as their ``encode_obs`` does); priorities are not stored."""

    def __init__(self, batch: dict[str, torch.Tensor], gate: Gate, device: torch.device) -> None:
        super().__init__([])
        self.batch, self.gate, self.device = batch, gate, device

    def sample(self, batch_size: int, mode: str = "train") -> dict[str, Any]:
        self.gate.enter()
        # Converted on the host, then copied to the device, as their replay's sample does.
        return {key: value.to(self.device) if isinstance(value, torch.Tensor) else value
                for key, value in golden.their_batch(self.batch).items()}

    def encode_obs(self, obs: Any, prediction: bool = False) -> torch.Tensor:
        # their acting step's frame, on the device as their own replay's encode_obs leaves it
        return super().encode_obs(obs, prediction).to(self.device)

    def update_priorities(self, idxs: np.ndarray, priorities: np.ndarray) -> None:
        pass


class GatedLogger(golden.Recorder):
    """Their logger's interface; ``update_log`` (the last call of an update) ends a timed update."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    def update_log(self, mode: str, **logs: Any) -> None:
        self.gate.leave()


class CountingEnv(golden.ScriptedEnv):
    """The scripted environment, counting acting steps (none may run while timing)."""

    def __init__(self, obs_shape: tuple[int, ...]) -> None:
        super().__init__(obs_shape)
        self.steps = 0

    def step(self, action: int) -> tuple[np.ndarray, float, bool, Any]:
        self.steps += 1
        return super().step(action)


def their_batch_source(batch: Batch) -> dict[str, torch.Tensor]:
    """Our synthetic batch in the generator's form (n-step return, done = discount 0)."""
    return {"obs": torch.from_numpy(batch.obs), "next_obs": torch.from_numpy(batch.next_obs),
            "action": torch.from_numpy(batch.action), "return": torch.from_numpy(batch.reward),
            "done": torch.from_numpy((batch.discount == 0).astype(np.float32)),
            "weight": torch.from_numpy(batch.weight)}


class TheirLearner:
    """Their RAINBOW agent at full Atari size; ``update()`` runs one update of their own loop."""

    def __init__(self, code: SimpleNamespace, preset: str, batch: Batch, threads: int,
                 device: torch.device, after_reset: bool = False) -> None:
        from dotmap import DotMap
        from omegaconf import OmegaConf

        case = {"env_steps": 1, "replay_ratio": 1, **copy.deepcopy(THEIRS[preset])}
        torch.manual_seed(0)
        model = code.build_model(OmegaConf.create(golden.model_config(case, OBS_SHAPE, NUM_ACTIONS, HIDDEN)))
        cfg = DotMap(golden.agent_config(case, OBS_SHAPE, NUM_ACTIONS, len(batch.obs)))
        aug = code.augmentation.Augmentation(obs_shape=cfg.obs_shape, aug_types=list(cfg.aug_types))
        self.gate = Gate()
        self.env = CountingEnv(OBS_SHAPE)
        self.agent = code.RAINBOW(cfg=cfg, device=device, train_env=self.env, eval_env=None,
                                  logger=GatedLogger(self.gate),
                                  buffer=GatedBuffer(their_batch_source(batch), self.gate, device),
                                  aug_func=aug, model=model)
        self.sam = cfg.optimizer["type"] == "sam"
        reset_interval = cfg.reset_per_optimize_step
        if after_reset:  # their loop across a Reset: update 1, Reset + optimizer rebuild, update 2
            cfg.num_timesteps, cfg.optimize_per_env_step, cfg.reset_per_optimize_step = 2, 1, 1
            self.agent.train()
        self.sam_whole_network = self.sam and self.agent.sam_head  # their post-Reset SAM
        assert self.sam_whole_network == (self.sam and after_reset)
        # The timed run: one acting step, then updates until stopped (no Reset within them).
        cfg.num_timesteps, cfg.optimize_per_env_step, cfg.reset_per_optimize_step = 1, 10**9, reset_interval
        self.threads = threads
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        torch.set_num_threads(self.threads)
        self.gate.worker_threads = torch.get_num_threads()
        try:
            self.agent.train()
        except StopTimingError:
            pass
        except BaseException as error:  # surfaced in the main thread
            self.gate.error = error
            self.gate.waiting.set()
            self.gate.done.release()

    def start(self) -> None:
        """Start their loop and wait until it stands at its first ``buffer.sample``."""
        self.gate.active = True
        self.thread.start()
        self.gate.waiting.wait()
        if self.gate.error is not None:
            raise RuntimeError("their training loop failed") from self.gate.error
        self.acting_steps = self.env.steps

    def update(self) -> None:
        self.gate.update()

    def stop(self) -> None:
        assert self.env.steps == self.acting_steps, "an acting step ran while timing"
        self.gate.stop = True
        self.gate.go.release()
        self.thread.join()


# ---------------------------------------------------------------------------- our side
def our_agent(preset: str, fidelity: str, batch_size: int, overrides: dict[str, Any],
              device: torch.device, after_reset: bool = False) -> RainbowAgent:
    torch.manual_seed(0)
    config = make_config("atari", preset, batch_size, str(device), {"fidelity": fidelity, **overrides})
    agent = RainbowAgent(config, OBS_SHAPE, NUM_ACTIONS, device)
    if after_reset:
        agent._after_reset()  # what their optimizer rebuild at a Reset changes (authors profile)
    return agent


def changes_at_reset(agent: RainbowAgent) -> bool:
    """Whether a Reset changes the work of this agent's update (SAM on everything afterwards)."""
    return agent.config.sam.enabled and agent.config.sam.all_after_reset


# ----------------------------------------------------------------------------- machine
def cpu_info() -> dict[str, Any]:
    """The CPU's model name and the SIMD flags that matter here (``plastic.runtime.cpu_model``)."""
    name, present = cpu_model()
    return {"cpu_model": name, "cpus": os.cpu_count(), **{flag: flag in present for flag in SIMD_FLAGS}}


def precision_overrides(precision: str) -> tuple[dict[str, Any], str]:
    """Our ``train.precision`` override if the config has that key, and a note for the output."""
    if "train.precision" in flatten(Config().to_dict()):
        return {"train.precision": precision}, f"ours in {precision}; theirs always fp32"
    return {}, (f"Config has no train.precision: only fp32 is measured (--precision {precision} "
                "ignored)" if precision != "fp32" else "Config has no train.precision: fp32")


def device_name(device: torch.device) -> str:
    """``cpu``, or the GPU's name (``cuda: NVIDIA H200``)."""
    return "cpu" if device.type == "cpu" else f"{device.type}: {torch.cuda.get_device_name(device)}"


# ---------------------------------------------------------------------------- one pass
def bench_pass(code: SimpleNamespace, preset: str, threads: int, args: argparse.Namespace,
               overrides: dict[str, Any], machine: dict[str, Any]) -> list[dict[str, Any]]:
    """Time theirs and ours for one preset at one thread count; one result dict per state."""
    torch.set_num_threads(threads)
    device = args.device
    batch = synthetic_batch(OBS_SHAPE, NUM_ACTIONS, args.batch_size, SHAPES["high"])
    theirs = {"before": TheirLearner(code, preset, batch, threads, device)}
    ours = {"authors": our_agent(preset, "authors", args.batch_size, overrides, device),
            "intent": our_agent(preset, "intent", args.batch_size, overrides, device)}
    states = ["before"]
    if theirs["before"].sam:
        states.append("after")
        theirs["after"] = TheirLearner(code, preset, batch, threads, device, after_reset=True)
        for fidelity in ("authors", "intent"):
            if changes_at_reset(ours[fidelity]):
                ours[f"{fidelity}_after"] = our_agent(preset, fidelity, args.batch_size, overrides,
                                                      device, after_reset=True)
    functions: dict[str, Callable[[], Any]] = {}
    for state, learner in theirs.items():
        learner.start()
        functions[f"theirs_{state}"] = learner.update
    for name, agent in ours.items():
        functions[f"ours_{name}"] = lambda agent=agent: agent.update(batch)
    load_before = os.getloadavg()[0]
    try:
        # a graphed update's 3 eager warm-ups and its recording are not timed
        warmup = untimed_calls(args.warmup, args.cuda_graph)
        times = time_alternating(functions, device, rounds=args.rounds,
                                 per_round=args.per_round, warmup=warmup)
    finally:
        for learner in theirs.values():
            learner.stop()
    load_after = os.getloadavg()[0]
    worker_threads = {learner.gate.worker_threads for learner in theirs.values()}
    results = []
    for state in states:
        row_times = {"theirs": times[f"theirs_{state}"]}
        for fidelity in ("authors", "intent"):
            key = f"ours_{fidelity}_after" if state == "after" and f"ours_{fidelity}_after" in times \
                else f"ours_{fidelity}"
            row_times[f"ours_{fidelity}"] = times[key]
        theirs_ms, theirs_cpu = row_times["theirs"]["wall_ms"], row_times["theirs"]["cpu_ms"]
        results.append({
            "bench": "against_authors", "preset": preset,
            "state": {"before": "before_reset", "after": "after_reset"}[state] if len(states) > 1 else "-",
            "threads": threads, "their_worker_threads": sorted(worker_threads),
            "their_sam_whole_network": theirs[state].sam_whole_network,
            "precision": overrides.get("train.precision", "fp32"), "batch_size": args.batch_size,
            "device": machine["device"], "cuda_graph": bool(overrides.get("train.cuda_graph")),
            **{f"{name}_ms": round(t["wall_ms"], 1) for name, t in row_times.items()},
            **{f"{name}_cpu_ms": round(t["cpu_ms"], 1) for name, t in row_times.items()},
            **{f"{name}_min_ms": round(t["wall_ms_min"], 1) for name, t in row_times.items()},
            **{f"theirs_over_{name}": round(theirs_ms / row_times[name]["wall_ms"], 2)
               for name in ("ours_authors", "ours_intent")},
            **{f"theirs_over_{name}_cpu": round(theirs_cpu / row_times[name]["cpu_ms"], 2)
               for name in ("ours_authors", "ours_intent")},
            "loadavg_1m": [round(load_before, 2), round(load_after, 2)],
            "rounds": args.rounds, "updates_per_round": args.per_round,
            "cpu_model": machine["cpu_model"], "avx512_bf16": machine["avx512_bf16"],
        })
    del theirs, ours, functions
    gc.collect()
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| preset | state | threads | theirs ms | ours `authors` ms | ours `intent` ms | "
             "theirs / ours `authors` | theirs / ours `intent` | load 1 min |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['preset']} | {r['state']} | {r['threads']} | {r['theirs_ms']} | "
                     f"{r['ours_authors_ms']} | {r['ours_intent_ms']} | {r['theirs_over_ours_authors']} | "
                     f"{r['theirs_over_ours_intent']} | {r['loadavg_1m'][0]}–{r['loadavg_1m'][1]} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="drq,plastic")
    parser.add_argument("--threads", default="1,2", help="comma-separated; each its own pass")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="our train.precision (if the config has that key); theirs is fp32")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default), cuda or cuda:N: both updates run there")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="our update replayed as a CUDA graph (train.cuda_graph; CUDA only)")
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    args = parser.parse_args()
    try:
        args.device = resolve_device(args.device)
    except (RuntimeError, ValueError) as error:
        parser.error(str(error))
    presets = args.presets.split(",")
    for preset in presets:
        if preset not in THEIRS:
            parser.error(f"unknown preset {preset!r}; valid: {', '.join(THEIRS)}")
    root = os.environ.get("PLASTIC_AUTHORS_DIR")
    if not root or not (Path(root) / "atari" / "src" / "agents" / "base.py").is_file():
        print("set PLASTIC_AUTHORS_DIR to an export of github.com/dojeon-ai/PLASTIC "
              "(see tests/golden/generate_atari_update.py)", file=sys.stderr)
        return 2
    code = golden.import_authors_code(Path(root))
    # Their train() wraps its env-step loop in a tqdm bar (drawn once per train() call, outside
    # the timed updates): a silent stand-in, as wandb's.
    sys.modules["src.agents.base"].tqdm = SimpleNamespace(tqdm=lambda iterable, *_, **__: iterable)
    overrides, note = precision_overrides(args.precision)
    if args.cuda_graph:
        overrides["train.cuda_graph"] = True
        note += "; ours replayed as a CUDA graph"
    try:
        make_config("atari", presets[0], args.batch_size, str(args.device), overrides)
    except ValueError as error:  # e.g. a precision our config does not (yet) accept
        parser.error(str(error))
    machine = {**cpu_info(), "device": device_name(args.device)}
    print(json.dumps({"bench": "against_authors_machine", **machine, "torch": torch.__version__,
                      "precision_note": note, "loadavg_1m": round(os.getloadavg()[0], 2)}), flush=True)
    results = []
    for threads in (int(t) for t in args.threads.split(",")):
        for preset in presets:
            for result in bench_pass(code, preset, threads, args, overrides, machine):
                print(json.dumps(result), flush=True)
                results.append(result)
    if args.markdown:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
