"""Does flushing subnormal floats speed up the synthetic experiments (PLASTIC Sec. 3)?

Their loop (``plastic.synthetic.experiment.run_synthetic``) is not the RL ``Trainer``; both flush
by default (``flush_denormal``). This benchmark trains one synthetic run with subnormals kept
(``flush_denormal=False``), then times its last training batches again from the trained
state, with subnormals kept and flushed in alternating rounds. One JSON line: the share of SGD
momentum entries that were subnormal, ms per training step in each mode, their ratio, and whether
the two modes left the same parameters.

    python benchmarks/bench_synthetic_denormals.py input vanilla --chunks 10 --iters-per-chunk 200

SGD's momentum of a weight without gradient decays by 0.9 a step, as Adam's first moment does, so
subnormals need dead units and no weight decay: the input task's ReLU methods (vanilla, sam, reset).
"""

from __future__ import annotations

import argparse
import copy
import os
from typing import Any

import torch

from bench_denormals import subnormal_fraction, time_kept_and_flushed
from harness import print_result, run_main
from plastic.synthetic import experiment
from plastic.synthetic.data import load_dataset


def bench_synthetic_denormals(task: str, method: str, *, chunks: int = 10, iters_per_chunk: int = 200,
                              dataset: str = "digits", timed_steps: int = 20,
                              rounds: int = 6) -> dict[str, Any]:
    config = experiment.synthetic_config(task, method, dataset=dataset, chunks=chunks,
                                         iters_per_chunk=iters_per_chunk,
                                         reset_every=max(1, chunks // 2),
                                         flush_denormal=False).resolved()
    images = experiment.with_normalization(load_dataset(config.dataset, verbose=False),
                                           config.normalization)
    seen: dict[str, Any] = {"batches": []}

    def observer(event: str, **info: Any) -> None:
        if event == "batch":
            seen["batches"] = [*seen["batches"][-(timed_steps - 1):], (info["indices"], info["labels"])]
        elif event == "step":
            seen["model"], seen["optimizer"] = info["model"], info["optimizer"]

    experiment.run_synthetic(config, None, dataset=images, observer=observer)  # kept, as IEEE
    model, optimizer = seen["model"], seen["optimizer"]
    device = torch.device(config.device)
    batches = [(images.prepare(images.x_train[indices], device), labels.to(device))
               for indices, labels in seen["batches"]]
    saved_model, saved_optimizer = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())

    def restore() -> None:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(copy.deepcopy(saved_optimizer))

    def run_steps() -> None:
        for x, y in batches:
            experiment._train_step(model, optimizer, x, y)

    median, after = time_kept_and_flushed(restore, run_steps, model.parameters, rounds=rounds)
    for name in median:
        median[name] /= len(batches)
    optimizer.load_state_dict(saved_optimizer)
    return {
        "bench": "synthetic_denormals", "task": task, "method": method, "dataset": config.dataset,
        "trained_steps": chunks * iters_per_chunk,
        "subnormal_optimizer_state": round(subnormal_fraction(optimizer), 4),
        "ms_per_step_kept": round(median["kept"], 2), "ms_per_step_flushed": round(median["flushed"], 2),
        "speedup": round(median["kept"] / median["flushed"], 3),
        "parameters_bit_identical": all(torch.equal(a, b) for a, b in zip(after["kept"], after["flushed"])),
        "rounds": rounds, "steps_per_round": len(batches), "threads": torch.get_num_threads(),
        "loadavg_1m": round(os.getloadavg()[0], 2), "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="time a trained synthetic run's step with subnormal floats kept and flushed")
    parser.add_argument("task", choices=sorted(experiment.TASK_DEFAULTS))
    parser.add_argument("method", help="vanilla, ln, sam, crelu, reset or plastic")
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--iters-per-chunk", type=int, default=200)
    parser.add_argument("--dataset", default="digits", help="digits (default) or cifar10")
    parser.add_argument("--timed-steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=6, help="alternating timing rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    return print_result(args, lambda: bench_synthetic_denormals(
        args.task, args.method, chunks=args.chunks, iters_per_chunk=args.iters_per_chunk,
        dataset=args.dataset, timed_steps=args.timed_steps, rounds=args.rounds))


if __name__ == "__main__":
    raise SystemExit(run_main(main))
