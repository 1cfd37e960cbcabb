"""One run of the input- or label-adaptation experiment: train chunk by chunk, measure, save.

Protocol (PLASTIC Sec. 3 and its appendix): ``chunks`` stages of ``iters_per_chunk`` SGD updates
(momentum 0.9, batch 128) each. Input task: lr 1e-3, no weight decay, stage k trains on chunks
0..k. Label task: lr 1e-2, weight decay 1e-3, all data with labels (y + k) mod 10. SAM ρ 0.1
(SGD as base, perturbing the whole network as in the authors' synthetic code; ``sam_scope
="backbone"`` keeps it off the head). Reset re-initialises the head every ``reset_every`` (10)
stages.

Fidelity: three knobs of :class:`SyntheticConfig` choose between the method as the paper states
it ("intent") and the update of the authors' synthetic code ("authors", github dojeon-ai/PLASTIC,
synthetic/input_adaptation.py and output_adaptation.py), which produced the paper's numbers: when
the head is reset (``reset_schedule``), how inputs are standardised (``normalization``) and
whether a Reset clears the head's SGD momentum (``reset_momentum``). ``fidelity`` picks a profile
(``FIDELITY_PROFILES``) for the knobs left unset; :func:`synthetic_config` and the CLI default to
"authors", the dataclass to "intent" (what configs saved before the knobs existed meant).

After each stage: test accuracy on the stage's labels, its running mean (area under the
accuracy curve), mean training loss of the stage, active-unit ratios of backbone and head, and
optionally the top Hessian eigenvalue of the training loss.
"""

from __future__ import annotations

import math
import time
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plastic.configs.schema import coerce
from plastic.humanize import duration_text
from plastic.metrics import active_units, hessian_top_eigenvalue
from plastic.optim.sam import SAM
from plastic.reset import reset_
from plastic.runtime import denormals_flushed
from plastic.synthetic.artifacts import read_json, write_csv, write_json
from plastic.synthetic.data import NORMALIZATIONS, ImageDataset, load_dataset, with_normalization
from plastic.synthetic.models import METHODS, build_model, get_method
from plastic.synthetic.tasks import (
    EpochSampler,
    check_task,
    make_chunks,
    stage_labels,
    training_indices,
)

TASK_DEFAULTS: dict[str, dict[str, float]] = {
    "input": {"lr": 1e-3, "weight_decay": 0.0},
    "label": {"lr": 1e-2, "weight_decay": 1e-3},
}
SAM_SCOPES = ("all", "backbone")
FIDELITIES = ("authors", "intent")
RESET_SCHEDULES = ("before_chunk", "after_chunk")
# The value of every fidelity knob under each profile (knob meanings: SyntheticConfig).
FIDELITY_PROFILES: dict[str, dict[str, Any]] = {
    "intent": {"reset_schedule": "before_chunk", "normalization": "data", "reset_momentum": True},
    "authors": {"reset_schedule": "after_chunk", "normalization": "cifar", "reset_momentum": False},
}
# Keys that say where a run ran, where its data lay and whether subnormal floats were flushed:
# they never change a result beyond values below 1.2e-38.
PLACEMENT_KEYS = frozenset({"device", "data_dir", "flush_denormal"})
DEFAULT_FIDELITY = "authors"  # of synthetic_config() and the CLI: the update behind the paper's numbers
METRIC_FIELDS = (
    "chunk",
    "train_size",
    "iterations",
    "reset",
    "train_loss",
    "test_loss",
    "test_acc",
    "test_acc_mean",
    "active_backbone",
    "active_head",
    "hessian_top",
    "elapsed_s",
)
Observer = Callable[..., None]


@dataclass
class SyntheticConfig:
    """Everything that defines a run (saved as config.json)."""

    task: str
    method: str
    dataset: str = "auto"
    data_dir: str | None = None
    chunks: int = 100
    iters_per_chunk: int = 500
    batch_size: int = 128
    lr: float | None = None  # None: the task's default (TASK_DEFAULTS)
    weight_decay: float | None = None
    momentum: float = 0.9
    rho: float = 0.1
    sam_scope: str = "all"
    reset_every: int = 10
    seed: int = 0
    hessian: bool = False
    hessian_iters: int = 20
    probe_size: int = 256  # test inputs for the active units; training inputs for the Hessian
    device: str = "cpu"
    # "intent" (the method as the paper states it) or "authors" (the authors' synthetic code).
    # The profile (FIDELITY_PROFILES) fills each knob below left None; an explicit value wins.
    # "intent" by default, so a config saved before the knobs existed means what it meant.
    fidelity: str = "intent"
    # When Reset re-initialises the head. "before_chunk" (intent): at the start of chunks
    # reset_every, 2·reset_every, ... (never chunk 0). "after_chunk" (authors,
    # input_adaptation.py:301): after training and evaluating chunks 0, reset_every, ..., i.e. at
    # the start of chunks 1, reset_every + 1, ... (one after the last chunk would change nothing
    # and is not done).
    reset_schedule: str | None = None
    # Input standardisation. "data" (intent): the training set's per-channel mean and std.
    # "cifar" (authors, input_adaptation.py:59): the fixed constants of their CIFAR-10 transform
    # (data.CIFAR10_FIXED_MEAN/STD), whatever the dataset.
    normalization: str | None = None
    # Whether a Reset clears the reset head's SGD momentum (True, intent) or keeps it (False,
    # authors: they re-initialise the layers in place and keep the optimizer and its state).
    reset_momentum: bool | None = None
    # Flush subnormal floats to zero on the CPU while training, as the RL runs do
    # (train.flush_denormal): SGD momentum of a dead unit's weights decays through them and x86
    # CPUs compute them slowly (benchmarks/README.md). False keeps IEEE arithmetic.
    flush_denormal: bool = True

    def resolved(self) -> SyntheticConfig:
        """A validated copy with the task's default lr and weight decay and the fidelity
        profile's knobs filled in."""
        check_task(self.task)
        get_method(self.method)
        _check_choice("sam_scope", self.sam_scope, SAM_SCOPES)
        _check_choice("fidelity", self.fidelity, FIDELITIES)
        for name in ("chunks", "iters_per_chunk", "batch_size", "reset_every", "probe_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        values = asdict(self)
        for key, default in {**TASK_DEFAULTS[self.task], **FIDELITY_PROFILES[self.fidelity]}.items():
            if values[key] is None:
                values[key] = default
        _check_choice("reset_schedule", values["reset_schedule"], RESET_SCHEDULES)
        _check_choice("normalization", values["normalization"], NORMALIZATIONS)
        for name in ("reset_momentum", "flush_denormal"):
            if not isinstance(values[name], bool):
                raise ValueError(f"{name} must be true or false, got {values[name]!r}")
        return SyntheticConfig(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SyntheticConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys: {', '.join(sorted(known))}")
        kinds = typing.get_type_hints(cls)
        return cls(**{key: coerce(key, value, kinds[key]) for key, value in values.items()})


def synthetic_config(
    task: str, method: str, *, fidelity: str = DEFAULT_FIDELITY, **values: Any
) -> SyntheticConfig:
    """A config with the ``fidelity`` profile ("authors" unless told) for the knobs not given."""
    return SyntheticConfig(task=task, method=method, fidelity=fidelity, **values)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(choices)}")


def _make_optimizer(model: nn.Module, config: SyntheticConfig, use_sam: bool) -> torch.optim.Optimizer:
    kwargs = dict(lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if not use_sam:
        return torch.optim.SGD(model.parameters(), **kwargs)
    if config.sam_scope == "all":
        groups: list[dict[str, Any]] = [{"params": list(model.parameters())}]
    else:
        groups = [
            {"params": list(model.backbone.parameters())},
            {"params": list(model.head.parameters()), "sam": False},
        ]
    return SAM(groups, base_optimizer=torch.optim.SGD, rho=config.rho, **kwargs)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: ImageDataset,
    labels: torch.Tensor,
    device: torch.device,
    batch_size: int = 1000,
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on the test images against ``labels``."""
    model.eval()
    correct, loss_sum = 0, 0.0
    for start in range(0, len(labels), batch_size):
        x = dataset.prepare(dataset.x_test[start : start + batch_size], device)
        y = labels[start : start + batch_size].to(device)
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(dim=1) == y).sum().item()
    model.train()
    return correct / len(labels), loss_sum / len(labels)


def _mean_ratio(ratios: dict[str, float], prefix: str) -> float:
    values = [v for k, v in ratios.items() if k == prefix or k.startswith(prefix + ".")]
    return float(np.mean(values)) if values else math.nan


def head_reset_due(stage: int, config: SyntheticConfig) -> bool:
    """Whether a Reset re-initialises the head right before ``stage`` is trained (for a method
    with Reset; ``config`` resolved)."""
    if config.reset_schedule == "before_chunk":
        return stage > 0 and stage % config.reset_every == 0
    if config.reset_schedule == "after_chunk":  # after chunk k with k % reset_every == 0
        return stage > 0 and (stage - 1) % config.reset_every == 0
    raise ValueError(f"unknown reset_schedule {config.reset_schedule!r}; resolve the config first")


def reset_head(model: nn.Module, optimizer: torch.optim.Optimizer, config: SyntheticConfig) -> list[str]:
    """Re-initialise the head in place; clear its optimizer state only if ``reset_momentum``."""
    return reset_(model, ["head"], optimizer=optimizer if config.reset_momentum else None)


def _train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> float:
    loss = F.cross_entropy(model(x), y)
    if isinstance(optimizer, SAM):
        loss.backward()
        optimizer.first_step(zero_grad=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.second_step(zero_grad=True)
    else:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return loss.item()


def _finished_summary(out_dir: Path, config: SyntheticConfig) -> dict[str, Any] | None:
    summary_path, config_path = out_dir / "summary.json", out_dir / "config.json"
    if not summary_path.is_file():
        return None
    if config_path.is_file():
        differ = saved_config_differences(read_json(config_path), config)
        if differ:
            raise ValueError(
                f"{out_dir} already holds a finished run with a different config "
                f"({', '.join(f'{k}: {was!r} there, {now!r} now' for k, (was, now) in differ.items())}); "
                "choose another --out or delete that directory"
            )
    return read_json(summary_path)


def saved_config_differences(saved: dict[str, Any], config: SyntheticConfig) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, value of config)}`` where a run directory's config.json differs from
    ``config`` (resolved here); where it ran and where the data lay do not count."""
    ignore = set(PLACEMENT_KEYS)
    if config.dataset == "auto":
        ignore.add("dataset")  # the saved config holds what "auto" resolved to
    old, new = _saved_config(saved), config.resolved().to_dict()
    return {key: (old.get(key), new.get(key)) for key in sorted((set(old) | set(new)) - ignore)
            if old.get(key) != new.get(key)}


def _saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config.json as a resolved config dict: keys it predates take the meaning they had
    then (fidelity "intent"); unreadable ones stay as saved, and so differ."""
    try:
        return SyntheticConfig.from_dict(saved).resolved().to_dict()
    except (TypeError, ValueError):
        return saved


def run_synthetic(
    config: SyntheticConfig,
    out_dir: str | Path | None = None,
    *,
    dataset: ImageDataset | None = None,
    observer: Observer | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Run one experiment and return its summary (also written to ``out_dir/summary.json``).

    A finished ``out_dir`` (with summary.json and the same config) is not redone: its summary is
    returned with ``"skipped": True``. An unfinished one is started again from scratch.
    ``observer(event, **info)``, if given, sees the run from inside (used by the tests):
    ``"batch"`` (stage, indices, labels), ``"step"`` after each update (stage, loss, model,
    optimizer), ``"pre_reset"``/``"reset"`` (stage, model, optimizer, names), ``"eval"`` (stage,
    labels). Subnormal floats are flushed to zero while it trains unless
    ``config.flush_denormal`` is False (``plastic.runtime.denormals_flushed``). torch's worker
    threads copy that setting when they start: with more than one thread, a caller that ran a
    parallel op before should enter ``denormals_flushed`` itself first (as the CLI does).
    """
    config = config.resolved()
    with denormals_flushed(config.flush_denormal):
        return _run_synthetic(config, out_dir, dataset=dataset, observer=observer, verbose=verbose)


def _run_synthetic(
    config: SyntheticConfig,
    out_dir: str | Path | None,
    *,
    dataset: ImageDataset | None,
    observer: Observer | None,
    verbose: bool,
) -> dict[str, Any]:
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        finished = _finished_summary(out, config)
        if finished is not None:
            if verbose:
                print(f"[synthetic] {out} is finished; skipping", flush=True)
            return {**finished, "skipped": True}

    notify = observer or (lambda event, **info: None)
    method = get_method(config.method)
    if dataset is None:
        dataset = load_dataset(config.dataset, config.data_dir, verbose=verbose)
    if config.dataset == "auto":
        config = replace(config, dataset=dataset.name)
    elif config.dataset != dataset.name:
        raise ValueError(f"config asks for dataset {config.dataset!r} but got {dataset.name!r}")
    dataset = with_normalization(dataset, config.normalization)
    device = torch.device(config.device)
    if out is not None:
        write_json(out / "config.json", config.to_dict())

    torch.manual_seed(config.seed)
    model = build_model(method, dataset.num_classes, dataset.x_train.shape[-1]).to(device)
    optimizer = _make_optimizer(model, config, method.sam)
    chunks = make_chunks(len(dataset.y_train), config.chunks, config.seed)
    batch_rng = torch.Generator().manual_seed(config.seed + 1)
    probe_rng = np.random.default_rng(config.seed + 2)
    probe_test = torch.as_tensor(np.sort(probe_rng.permutation(len(dataset.y_test))[: config.probe_size]))
    probe_x = dataset.prepare(dataset.x_test[probe_test], device)

    rows: list[dict[str, Any]] = []
    accuracies: list[float] = []
    resets = 0
    start_time = time.perf_counter()
    for stage in range(config.chunks):
        did_reset = method.reset and head_reset_due(stage, config)
        if did_reset:
            notify("pre_reset", stage=stage, model=model, optimizer=optimizer, names=["head"])
            reset_head(model, optimizer, config)
            resets += 1
            notify("reset", stage=stage, model=model, optimizer=optimizer, names=["head"])

        indices = training_indices(config.task, stage, chunks)
        train_labels = stage_labels(config.task, dataset.y_train, stage, dataset.num_classes)
        sampler = EpochSampler(indices, config.batch_size, batch_rng)
        model.train()
        losses = []
        for _ in range(config.iters_per_chunk):
            idx = sampler.next()
            y = train_labels[idx]
            notify("batch", stage=stage, indices=idx, labels=y)
            x = dataset.prepare(dataset.x_train[idx], device)
            losses.append(_train_step(model, optimizer, x, y.to(device)))
            notify("step", stage=stage, loss=losses[-1], model=model, optimizer=optimizer)

        test_labels = stage_labels(config.task, dataset.y_test, stage, dataset.num_classes)
        notify("eval", stage=stage, labels=test_labels)
        acc, test_loss = evaluate(model, dataset, test_labels, device)
        accuracies.append(acc)
        ratios = active_units(model, probe_x)
        hessian = math.nan
        if config.hessian:
            hessian = _hessian(model, dataset, indices, train_labels, config, probe_rng, device)
        row = {
            "chunk": stage,
            "train_size": len(indices),
            "iterations": (stage + 1) * config.iters_per_chunk,
            "reset": int(did_reset),
            "train_loss": float(np.mean(losses)),
            "test_loss": test_loss,
            "test_acc": acc,
            "test_acc_mean": float(np.mean(accuracies)),
            "active_backbone": _mean_ratio(ratios, "backbone"),
            "active_head": _mean_ratio(ratios, "head"),
            "hessian_top": hessian,
            "elapsed_s": round(time.perf_counter() - start_time, 3),
        }
        rows.append(row)
        if out is not None:
            write_csv(out / "metrics.csv", rows, METRIC_FIELDS)
        if verbose:
            print(_progress_line(config, stage, row), flush=True)

    summary = {
        "task": config.task,
        "method": config.method,
        "dataset": dataset.name,
        "seed": config.seed,
        "chunks": config.chunks,
        "iters_per_chunk": config.iters_per_chunk,
        "fidelity": config.fidelity,
        "final_test_acc": accuracies[-1],
        "mean_test_acc": float(np.mean(accuracies)),
        "final_train_loss": rows[-1]["train_loss"],
        "final_active_backbone": rows[-1]["active_backbone"],
        "final_active_head": rows[-1]["active_head"],
        "resets": resets,
        "wall_time_s": round(time.perf_counter() - start_time, 3),
    }
    if out is not None:
        write_json(out / "summary.json", summary)
    return {**summary, "skipped": False}


def _progress_line(config: SyntheticConfig, stage: int, row: dict[str, Any]) -> str:
    """One short line after each chunk: where the run is, its accuracy, and how long it needs."""
    done, elapsed = stage + 1, row["elapsed_s"]
    eta = elapsed / done * (config.chunks - done)
    return (f"[synthetic] {config.task}/{config.method} seed {config.seed} chunk {done}/{config.chunks}: "
            f"test acc {row['test_acc']:.4f} (mean {row['test_acc_mean']:.4f}), "
            f"{duration_text(elapsed)} elapsed, ETA {duration_text(eta)}")


def _hessian(
    model: nn.Module,
    dataset: ImageDataset,
    indices: np.ndarray,
    labels: torch.Tensor,
    config: SyntheticConfig,
    rng: np.random.Generator,
    device: torch.device,
) -> float:
    """Top eigenvalue of the training-loss Hessian on a random probe of the current data."""
    pick = torch.as_tensor(np.sort(rng.choice(indices, min(config.probe_size, len(indices)), False)))
    x = dataset.prepare(dataset.x_train[pick], device)
    y = labels[pick].to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    # Its own generator, so switching the Hessian on does not change the training run.
    generator = torch.Generator(device=device).manual_seed(int(rng.integers(2**31)))
    return float(
        hessian_top_eigenvalue(
            lambda: F.cross_entropy(model(x), y),
            params,
            iters=config.hessian_iters,
            generator=generator,
        )
    )


__all__ = [
    "DEFAULT_FIDELITY",
    "FIDELITIES",
    "FIDELITY_PROFILES",
    "METHODS",
    "METRIC_FIELDS",
    "RESET_SCHEDULES",
    "SAM_SCOPES",
    "TASK_DEFAULTS",
    "SyntheticConfig",
    "evaluate",
    "head_reset_due",
    "reset_head",
    "run_synthetic",
    "synthetic_config",
]
