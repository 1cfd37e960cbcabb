"""Golden fixtures for the synthetic experiments, made by running the PLASTIC authors' own code.

Their code: fetch ``github:dojeon-ai/PLASTIC`` and export a checkout of it (e.g. ``git archive
HEAD | tar -x -C /work/authors``), then point ``PLASTIC_AUTHORS_DIR`` at the export (the folder
holding ``synthetic/``). Run from the repository root::

    PLASTIC_AUTHORS_DIR=/work/authors .venv/bin/python tests/golden/generate_synthetic.py

It writes ``tests/golden/fixtures/synthetic/{input,label}_plastic.json`` (``--out DIR``:
elsewhere); running it again gives byte-identical files (``test_synthetic.py`` checks this when
``PLASTIC_AUTHORS_DIR`` is set). Besides torch and numpy it needs what their scripts import at the
top: ``einops`` and ``dotmap`` (``.venv/bin/pip install einops dotmap``) and ``tqdm``.

What runs. Their scripts are monolithic: the model class ``ConvNet`` is defined inside ``run()``,
and the training loop, evaluation and Reset are inline in it. So the generator imports
``synthetic/input_adaptation.py`` (input task) and ``synthetic/output_adaptation.py`` (label
task) as modules and calls their ``run(args)``, unchanged, with the PLASTIC flags of their Readme
(``--optimizer_type=sam --backbone_norm=ln --policy_reset=True --policy_crelu=True``), each
script's own lr, weight decay, momentum and rho, and a tiny protocol: 8 training and 4 test
images (fixed, random pixels), batch 2, 2 chunks of 2 iterations. Their Reset fires after chunk
0, so the run has 2 SAM+SGD steps, a head Reset with the SGD momentum kept across it, and 2 more
steps. Nothing is rewritten; what cannot be imported is stubbed, and the run is observed:

- ``torchvision`` (no wheel installs beside our torch): ``transforms.Compose/ToTensor/Normalize``
  with torchvision's semantics for HWC uint8 images, ``datasets.CIFAR10`` serving the fixed images.
- ``wandb``: no-ops, except that ``wandb.watch(model)`` is where the generator reaches their model:
  it records their default initialisation (under their ``torch.manual_seed``), loads the fixed
  weights (:func:`load_fixed_weights_`) and installs the observers below.
- ``SAM`` in the script's namespace is their class with recording hooks: the clean gradient at
  ``first_step``, the gradient at the perturbed point at ``second_step``, and parameters and SGD
  momentum buffers after it. ``nn.CrossEntropyLoss`` records the two losses of a step and its
  targets, a forward pre-hook the input batch, ``random_split`` the chunks, ``wandb.log`` the test
  accuracy and loss after each chunk.
- ``model.reinit_policy`` (their head Reset) runs with ``nn.Linear.reset_parameters`` writing fixed
  "fresh" weights (:func:`fresh_linear_`), so that our Reset can be fed the same ones; their
  layers, their in-place re-initialisation and their kept optimizer are what run.

Their model is fixed at 2304 → 384 → ... (1.1 M parameters), so full tensors would not fit the
fixtures: each tensor is kept as a digest (:func:`digest`: 2-norm, four ±1 projections over every
entry and 16 sampled entries), and the fixed weights as the recipe that makes them, checked by the
digest of the loaded model. ``tests/golden/test_synthetic.py`` imports the recipe and the digest
from this file (this module imports the authors' code only inside :func:`record_authors_run`).
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import importlib
import json
import math
import os
import re
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures" / "synthetic"
SCRIPTS = {"input": "input_adaptation", "label": "output_adaptation"}
N_TRAIN, N_TEST, IMAGE_SIZE = 8, 4, 32
SEED = 0
SAMPLES = 16  # entries of a tensor kept in its digest
PROJECTIONS = 4
AUTHORS_FILES = ("input_adaptation.py", "output_adaptation.py", "utils/SAM.py", "utils/train_utils.py")

# Their argparse options (input_adaptation.py:395-416, output_adaptation.py), at each script's
# defaults except the PLASTIC flags of their Readme and the tiny protocol.
_COMMON_ARGS: dict[str, Any] = {
    "exp_name": "golden",
    "checkpoints": "./checkpoints/",
    "optimizer_type": "sam",
    "rho": 0.1,
    "redo": False,
    "redo_tau": 0.1,
    "backbone_reset": False,
    "policy_reset": True,
    "backbone_norm": "ln",
    "policy_norm": None,
    "backbone_crelu": False,
    "policy_crelu": True,
    "batch_size": 2,
    "momentum": 0.9,
    "gpu": 0,
    "num_iters": 4,
    "num_chunks": 2,
    "num_workers": 0,
    "seed": SEED,
}
AUTHORS_ARGS: dict[str, dict[str, Any]] = {
    "input": {**_COMMON_ARGS, "weight_decay": 0.0, "learning_rate": 0.001},
    "label": {**_COMMON_ARGS, "adapt_type": "output", "weight_decay": 0.001, "learning_rate": 0.01},
}


# ----------------------------------------------------------------------------------------------
# Fixed values: portable (integer hashing in numpy), so both sides and any machine make the same.


def hash_uniform(n: int, key: int) -> np.ndarray:
    """``n`` float64 values in [0, 1): splitmix64 of (index, ``key``)."""
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53


def fixed_values(shape: tuple[int, ...], key: int, scale: float, offset: float = 0.0) -> torch.Tensor:
    """A float32 tensor of ``offset`` + U(-``scale``, ``scale``) values, fixed by ``key``."""
    u = hash_uniform(math.prod(shape), key)
    return torch.from_numpy(offset + scale * (2.0 * u - 1.0)).float().reshape(shape)


def fixed_images(n: int, key: int) -> torch.Tensor:
    """``n`` uint8 images, N×3×32×32 (our layout; their CIFAR-10 stub serves them as HWC)."""
    u = hash_uniform(n * 3 * IMAGE_SIZE * IMAGE_SIZE, key)
    return torch.from_numpy((u * 256).astype(np.uint8)).reshape(n, 3, IMAGE_SIZE, IMAGE_SIZE)


def fixed_labels(n: int, key: int) -> torch.Tensor:
    return torch.from_numpy((hash_uniform(n, key) * 10).astype(np.int64))


@torch.no_grad()
def load_fixed_weights_(model: nn.Module) -> None:
    """Overwrite every parameter with fixed values: norm layers' weight 1 ± 0.1 and bias ± 0.1,
    others U(±1/√fan_in) like torch's default bound; keyed by the parameter's position, so two
    models whose parameters come in the same order, of the same layer types, get the same."""
    position = 0
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if isinstance(module, (nn.GroupNorm, nn.LayerNorm)):
                value = fixed_values(param.shape, 1000 + position, 0.1, 1.0 if name == "weight" else 0.0)
            else:
                fan_in = math.prod(module.weight.shape[1:])
                value = fixed_values(param.shape, 1000 + position, 1.0 / math.sqrt(fan_in))
            param.copy_(value)
            position += 1


@torch.no_grad()
def fresh_linear_(layer: nn.Linear) -> None:
    """The forced "fresh" weights of a re-initialised Linear, keyed by its shape."""
    key = 100_000 + 7919 * layer.out_features + layer.in_features
    bound = 1.0 / math.sqrt(layer.in_features)
    layer.weight.copy_(fixed_values(tuple(layer.weight.shape), key, bound))
    if layer.bias is not None:
        layer.bias.copy_(fixed_values(tuple(layer.bias.shape), key + 1, bound))


@contextmanager
def forced_fresh_linears() -> Iterator[None]:
    """While active, ``nn.Linear.reset_parameters`` writes :func:`fresh_linear_`'s values."""
    original = nn.Linear.reset_parameters
    nn.Linear.reset_parameters = fresh_linear_  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Linear.reset_parameters = original  # type: ignore[method-assign]


# ----------------------------------------------------------------------------------------------
# Digests


def sample_indices(numel: int) -> list[int]:
    """The flat positions a digest keeps: spread over the tensor, all of a small one."""
    if numel <= SAMPLES:
        return list(range(numel))
    stride = numel // SAMPLES
    return [j * stride + (j * 7919) % stride for j in range(SAMPLES)]


@functools.lru_cache(maxsize=64)
def _signs(numel: int) -> np.ndarray:
    """PROJECTIONS × numel fixed ±1 vectors."""
    signs = [np.where(hash_uniform(numel, 9000 + k) < 0.5, -1.0, 1.0) for k in range(PROJECTIONS)]
    return np.stack(signs)


def digest(t: torch.Tensor) -> dict[str, Any]:
    """2-norm and ±1 projections over every entry (float64 sums of the float32 values) and
    sampled float32 entries, shortest repr."""
    values = t.detach().cpu().float().reshape(-1)
    flat = values.double().numpy()
    return {
        "n": flat.size,
        "norm": math.sqrt(float(np.sum(flat * flat))),
        "proj": [float(v) for v in (_signs(flat.size) * flat).sum(axis=1)],
        "val": [float(str(np.float32(values[i].item()))) for i in sample_indices(flat.size)],
    }


def digests(tensors: Any) -> list[dict[str, Any] | None]:
    return [None if t is None else digest(t) for t in tensors]


def encode_uint8(x: torch.Tensor) -> str:
    return base64.b64encode(x.contiguous().numpy().tobytes()).decode("ascii")


def decode_uint8(text: str, shape: tuple[int, ...]) -> torch.Tensor:
    raw = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    return torch.from_numpy(raw.copy()).reshape(shape)


def fixture_data() -> dict[str, torch.Tensor]:
    return {
        "x_train": fixed_images(N_TRAIN, 1),
        "y_train": fixed_labels(N_TRAIN, 2),
        "x_test": fixed_images(N_TEST, 3),
        "y_test": fixed_labels(N_TEST, 4),
    }


# ----------------------------------------------------------------------------------------------
# Stubs for what their scripts import but cannot be installed here


class _Compose:
    def __init__(self, transforms: list[Callable[[Any], Any]]) -> None:
        self.transforms = transforms

    def __call__(self, x: Any) -> Any:
        for transform in self.transforms:
            x = transform(x)
        return x


class _ToTensor:
    """torchvision's ToTensor on an HWC uint8 image: CHW float32 in [0, 1]."""

    def __call__(self, pic: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(pic)).permute(2, 0, 1).contiguous().float().div(255)


class _Normalize:
    """torchvision's Normalize: (x - mean) / std per channel, in the tensor's dtype."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean, self.std = mean, std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.mean, dtype=x.dtype).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=x.dtype).view(-1, 1, 1)
        return x.sub(mean).div(std)


class _CIFAR10:
    """Serves the fixed images as torchvision's CIFAR10 would (HWC uint8 + int label), and keeps
    each transformed image: those are the rows of their training set, to identify batches by."""

    data: dict[str, torch.Tensor] = {}
    served: dict[bool, dict[int, torch.Tensor]] = {}

    def __init__(self, root: str, train: bool = True, download: bool = False, transform: Any = None) -> None:
        split = "train" if train else "test"
        self.images = self.data[f"x_{split}"].permute(0, 2, 3, 1).numpy()
        self.labels = self.data[f"y_{split}"].tolist()
        self.transform = transform
        self.seen = _CIFAR10.served.setdefault(train, {})

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        image = self.transform(self.images[i]) if self.transform else self.images[i]
        self.seen[i] = image.clone()
        return image, self.labels[i]


def _install_stubs(on_watch: Callable[[nn.Module], None], on_log: Callable[..., None]) -> None:
    torchvision = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.Compose, transforms.ToTensor, transforms.Normalize = _Compose, _ToTensor, _Normalize
    datasets = types.ModuleType("torchvision.datasets")
    datasets.CIFAR10 = _CIFAR10
    torchvision.transforms, torchvision.datasets = transforms, datasets
    wandb = types.ModuleType("wandb")
    wandb.init = lambda *a, **k: None
    wandb.config = types.SimpleNamespace(update=lambda *a, **k: None)
    wandb.watch = lambda model, *a, **k: on_watch(model)
    wandb.log = on_log
    sys.modules.update(
        {"torchvision": torchvision, "torchvision.transforms": transforms,
         "torchvision.datasets": datasets, "wandb": wandb}
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Running their code


class Recorder:
    """Everything observed in one run of their ``run(args)``."""

    def __init__(self) -> None:
        self.model: nn.Module | None = None
        self.optimizer: Any = None
        self.names: list[str] = []
        self.seeded_init: list[Any] = []
        self.fixed_init: list[Any] = []
        self.chunks: list[list[int]] = []
        self.steps: list[dict[str, Any]] = []
        self.resets: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []
        self.last_input: torch.Tensor | None = None
        self.last_loss: tuple[torch.Tensor, torch.Tensor] | None = None

    # wandb.watch(model): their model, just built
    def on_model(self, model: nn.Module) -> None:
        self.model = model
        self.names = [n for n, _ in model.named_parameters()]
        self.seeded_init = digests(model.parameters())
        load_fixed_weights_(model)
        self.fixed_init = digests(model.parameters())
        model.register_forward_pre_hook(
            lambda _m, args: setattr(self, "last_input", args[0].detach().clone())
        )
        original_reset = model.reinit_policy

        def reinit_policy() -> None:
            before = self._momentum(model.policy.parameters())
            with forced_fresh_linears():
                original_reset()
            after = self._momentum(model.policy.parameters())
            self.resets.append(
                {
                    "after_iteration": len(self.steps),
                    "after_chunk": len(self.evals),
                    "head": digests(model.policy.parameters()),
                    "head_momentum": digests(after),
                    "momentum_kept": all(
                        a is not None and torch.equal(a, b) for a, b in zip(after, before, strict=True)
                    ),
                }
            )

        model.reinit_policy = reinit_policy  # type: ignore[method-assign]

    def on_log(self, logs: dict[str, Any], step: int | None = None) -> None:
        self.evals.append({"iteration": step, "test_acc": logs["test_acc"], "test_loss": logs["test_loss"]})

    def _momentum(self, params: Any) -> list[torch.Tensor | None]:
        state = self.optimizer.base_optimizer.state
        return [
            None if state[p].get("momentum_buffer") is None else state[p]["momentum_buffer"].clone()
            for p in params
        ]

    def _batch_indices(self, x: torch.Tensor) -> list[int]:
        rows = _CIFAR10.served[True]
        found = [[i for i, row in rows.items() if torch.equal(row, sample)] for sample in x]
        assert all(len(f) == 1 for f in found), "every batch row is exactly one training image"
        return [f[0] for f in found]

    def on_first_step(self) -> None:
        assert self.model is not None and self.last_input is not None and self.last_loss is not None
        loss, targets = self.last_loss
        self.steps.append(
            {
                "chunk": len(self.evals),
                "indices": self._batch_indices(self.last_input),
                "targets": targets.tolist(),
                "inputs": digest(self.last_input),
                "loss": loss.item(),
                "grad": digests(p.grad for p in self.model.parameters()),
            }
        )

    def on_second_step(self) -> None:
        assert self.model is not None and self.last_loss is not None
        self.steps[-1]["perturbed_loss"] = self.last_loss[0].item()
        self.steps[-1]["perturbed_grad"] = digests(p.grad for p in self.model.parameters())

    def on_step_done(self) -> None:
        assert self.model is not None
        self.steps[-1]["params"] = digests(self.model.parameters())
        self.steps[-1]["momentum"] = digests(self._momentum(self.model.parameters()))


def _recording_sam(base: type, rec: Recorder) -> type:
    class RecordingSAM(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            rec.optimizer = self

        def first_step(self, zero_grad: bool = False) -> None:
            rec.on_first_step()
            super().first_step(zero_grad)

        def second_step(self, zero_grad: bool = False) -> None:
            rec.on_second_step()
            super().second_step(zero_grad)
            rec.on_step_done()

    return RecordingSAM


def _recording_cross_entropy(rec: Recorder) -> type:
    class RecordingCrossEntropyLoss(nn.CrossEntropyLoss):
        def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            loss = super().forward(input, target)
            rec.last_loss = (loss.detach().clone(), target.clone())
            return loss

    return RecordingCrossEntropyLoss


@contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def import_authors_script(synthetic_dir: Path, script: str) -> types.ModuleType:
    if str(synthetic_dir) not in sys.path:
        sys.path.insert(0, str(synthetic_dir))
    return importlib.import_module(script)


def record_authors_run(synthetic_dir: Path, task: str) -> Recorder:
    """Run their script for ``task`` on the fixed data and weights; return what was observed."""
    rec = Recorder()
    _install_stubs(rec.on_model, rec.on_log)
    _CIFAR10.data, _CIFAR10.served = fixture_data(), {}
    module = import_authors_script(synthetic_dir, SCRIPTS[task])
    original_split = module.random_split

    def random_split(dataset: Any, lengths: list[int]) -> list[Any]:
        parts = original_split(dataset, lengths)
        rec.chunks = [sorted(int(i) for i in part.indices) for part in parts]
        return parts

    with ExitStack() as stack:
        stack.enter_context(_patched(module, "SAM", _recording_sam(module.SAM, rec)))
        stack.enter_context(_patched(module, "random_split", random_split))
        stack.enter_context(_patched(nn, "CrossEntropyLoss", _recording_cross_entropy(rec)))
        stack.enter_context(_patched(torch.cuda, "is_available", lambda: False))  # CPU: reproducible
        module.run(dict(AUTHORS_ARGS[task]))  # sets one torch thread, as in their runs
    return rec


def _file_hashes(synthetic_dir: Path) -> dict[str, str]:
    return {
        f"synthetic/{name}": hashlib.sha256((synthetic_dir / name).read_bytes()).hexdigest()
        for name in AUTHORS_FILES
    }


def build_fixture(synthetic_dir: Path, task: str) -> dict[str, Any]:
    rec = record_authors_run(synthetic_dir, task)
    args = AUTHORS_ARGS[task]
    assert rec.model is not None
    data = fixture_data()
    return {
        "about": "Made by tests/golden/generate_synthetic.py from the authors' synthetic code; "
        "tensors are digests (generate_synthetic.digest).",
        "authors_files": _file_hashes(synthetic_dir),
        "torch": torch.__version__,
        "script": SCRIPTS[task] + ".py",
        "args": args,
        "config": {
            "task": task,
            "method": "plastic",
            "chunks": args["num_chunks"],
            "iters_per_chunk": args["num_iters"] // args["num_chunks"],
            "batch_size": args["batch_size"],
            "lr": args["learning_rate"],
            "weight_decay": args["weight_decay"],
            "momentum": args["momentum"],
            "rho": args["rho"],
            "seed": args["seed"],
        },
        "data": {
            "x_train": encode_uint8(data["x_train"]),
            "y_train": data["y_train"].tolist(),
            "x_test": encode_uint8(data["x_test"]),
            "y_test": data["y_test"].tolist(),
        },
        "names": rec.names,
        "shapes": [list(p.shape) for p in rec.model.parameters()],
        "seeded_init": rec.seeded_init,
        "fixed_init": rec.fixed_init,
        "chunks": rec.chunks,
        "steps": rec.steps,
        "resets": rec.resets,
        "evals": rec.evals,
    }


def write_fixture(path: Path, fixture: dict[str, Any]) -> None:
    """Indented JSON with every list of numbers on one line."""
    text = json.dumps(fixture, indent=1)
    text = re.sub(r"\[\s+([-+0-9.eE,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Golden fixtures of the synthetic experiments.")
    parser.add_argument("--out", type=Path, default=FIXTURE_DIR, help=f"default {FIXTURE_DIR}")
    out_dir = parser.parse_args(argv).out
    root = os.environ.get("PLASTIC_AUTHORS_DIR")
    if not root:
        print("set PLASTIC_AUTHORS_DIR to an export of github.com/dojeon-ai/PLASTIC", file=sys.stderr)
        return 2
    synthetic_dir = Path(root).resolve() / "synthetic"
    if not (synthetic_dir / "input_adaptation.py").is_file():
        print(f"{synthetic_dir} has no input_adaptation.py", file=sys.stderr)
        return 2
    for task in SCRIPTS:
        path = out_dir / f"{task}_plastic.json"
        write_fixture(path, build_fixture(synthetic_dir, task))
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
