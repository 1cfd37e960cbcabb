"""Time a trained run's update with subnormal floats kept (IEEE) and flushed to zero
(``train.flush_denormal``, the default), in alternating rounds in one process.

Subnormals appear only after training (Adam's moments of weights without gradients decay through
them; ``plastic.runtime``), so this benchmark starts from a run's checkpoint: it rebuilds the run's
agent and replay as a resumed run would, samples the batches once, and times the same updates from
the same restored agent state and random draws in both modes. One JSON line: ms per update in each
mode, their ratio, the fraction of the optimizer state that was subnormal at the checkpoint, and
how far apart the two modes left the trained parameters (bit-identical or the largest difference).

    python benchmarks/bench_denormals.py RUN_DIR --rounds 4 --per-round 5

RUN_DIR is read, never written: checkpoint.pt and config.json of a Rainbow run (Atari, MinAtar) or of
a DrQ-SAC one (DMC; its critic's, actor's and temperature's optimizers and parameters together).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from harness import print_result, run_main
from plastic.configs import Config
from plastic.runtime import denormals_flushed
from plastic.train.checkpoint import read_json
from plastic.train.loop import Trainer

FLOAT32_TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32


def subnormal_fraction(*optimizers: torch.optim.Optimizer) -> float:
    """The fraction of the optimizers' floating-point state entries that are subnormal."""
    subnormal = total = 0
    for state in (state for optimizer in optimizers for state in optimizer.state.values()):
        for value in state.values():
            if torch.is_tensor(value) and value.is_floating_point() and value.numel() > 1:
                subnormal += int(((value != 0) & (value.abs() < FLOAT32_TINY)).sum())
                total += value.numel()
    return subnormal / max(total, 1)


def time_kept_and_flushed(restore: Callable[[], None], run_steps: Callable[[], None],
                          parameters: Callable[[], Iterable[torch.Tensor]], *,
                          rounds: int) -> tuple[dict[str, float], dict[str, list[torch.Tensor]]]:
    """Time ``run_steps`` from the state ``restore`` sets up, with subnormals kept and flushed in
    alternating order over ``rounds`` rounds after one warm-up round.

    Returns the median milliseconds of one ``run_steps`` call in each mode ("kept", "flushed") and
    copies of ``parameters()`` as each mode left them.
    """
    modes = {"kept": False, "flushed": True}
    times: dict[str, list[float]] = {name: [] for name in modes}
    after: dict[str, list[torch.Tensor]] = {}
    for r in range(rounds + 1):  # round 0 warms up
        for name in modes if r % 2 == 0 else reversed(modes):
            restore()
            with denormals_flushed(modes[name]):
                start = time.perf_counter()
                run_steps()
                elapsed = (time.perf_counter() - start) * 1e3
            if r:
                times[name].append(elapsed)
            after[name] = [p.detach().clone() for p in parameters()]
    return {name: statistics.median(values) for name, values in times.items()}, after


def agent_optimizers(agent: Any) -> list[torch.optim.Optimizer]:
    """The Rainbow agent's optimizer, or the DrQ-SAC agent's three."""
    if hasattr(agent, "optimizer"):
        return [agent.optimizer]
    return [agent.critic_optimizer, agent.actor_optimizer, agent.alpha_optimizer]


def trained_parameters(agent: Any) -> list[torch.Tensor]:
    """What the agent's updates train: the Rainbow online network, or SAC's critic, actor and log α."""
    if hasattr(agent, "online"):
        return list(agent.online.parameters())
    return [*agent.critic.parameters(), *agent.actor.parameters(), agent.log_alpha]


def bench_denormals(run_dir: Path, *, rounds: int = 4, per_round: int = 5) -> dict[str, Any]:
    if not (run_dir / "checkpoint.pt").is_file():
        raise ValueError(f"{run_dir} has no checkpoint.pt: the benchmark needs a run that trained a while")
    config = Config.from_dict(read_json(run_dir / "config.json"))
    trainer = Trainer(config, run_dir, progress=False)
    trainer._setup()  # what a resumed run does first: its env, agent and replay, then the checkpoint
    trainer._load()
    agent, replay = trainer.agent, trainer.replay
    saved = copy.deepcopy(agent.state_dict())
    batches = [replay.sample(trainer.replay_settings.batch_size) for _ in range(per_round)]

    def restore() -> None:
        agent.load_state_dict(copy.deepcopy(saved))
        torch.manual_seed(0)  # the same noise and augmentation draws in both modes

    def run_updates() -> None:
        for batch in batches:
            agent.update(batch)

    median, after = time_kept_and_flushed(restore, run_updates, lambda: trained_parameters(agent),
                                          rounds=rounds)
    for name in median:
        median[name] /= per_round
    agent.load_state_dict(saved)
    trainer.env.close()
    differences = [float((a - b).abs().max()) for a, b in zip(after["kept"], after["flushed"])]
    return {
        "bench": "denormals", "run": str(run_dir), "suite": config.suite, "game": config.game,
        "preset": config.preset, "step": trainer.state.step,
        "subnormal_optimizer_state": round(subnormal_fraction(*agent_optimizers(agent)), 4),
        "ms_per_update_kept": round(median["kept"], 2), "ms_per_update_flushed": round(median["flushed"], 2),
        "speedup": round(median["kept"] / median["flushed"], 2),
        # what flushing changed in the parameters after the same updates from the same state
        "max_abs_parameter_difference": max(differences),
        "parameters_bit_identical": all(torch.equal(a, b) for a, b in zip(after["kept"], after["flushed"])),
        "rounds": rounds,
        "updates_per_round": per_round, "threads": torch.get_num_threads(),
        "loadavg_1m": round(os.getloadavg()[0], 2), "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="time a trained run's update with subnormal floats kept and flushed")
    parser.add_argument("run_dir", type=Path, help="a run directory with checkpoint.pt and config.json")
    parser.add_argument("--rounds", type=int, default=4, help="alternating timing rounds")
    parser.add_argument("--per-round", type=int, default=5, help="updates per round")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    return print_result(args, lambda: bench_denormals(args.run_dir.expanduser().resolve(), rounds=args.rounds,
                                                      per_round=args.per_round))


if __name__ == "__main__":
    raise SystemExit(run_main(main))
