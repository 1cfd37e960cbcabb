"""A short, real demonstration of the building blocks on scikit-learn's digits (no download).

Trains the same small CNN twice on a label-shifting task — plain Adam + ReLU, and
LayerNorm2d + CReLU + SAM with a head Reset halfway — and prints accuracy and plasticity metrics.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plastic import SAM, CReLU, LayerNorm2d, metrics, reset_


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.tensor(data.target)


class SmallCNN(nn.Module):
    def __init__(self, plastic: bool) -> None:
        super().__init__()
        norm = (lambda c: LayerNorm2d(c)) if plastic else (lambda c: nn.Identity())
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), norm(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), norm(32), nn.ReLU(), nn.Flatten(),
        )
        act, width = (CReLU(), 128) if plastic else (nn.ReLU(), 64)
        self.head = nn.Sequential(nn.Linear(32 * 4 * 4, 64), act, nn.Linear(width, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _train(plastic: bool, stages: int, iters: int, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    images, labels = _digits()
    rng = np.random.default_rng(seed)
    order = torch.from_numpy(rng.permutation(len(labels)))
    train, test = order[:1400], order[1400:]
    model = SmallCNN(plastic)
    groups = [
        {"params": model.backbone.parameters()},
        {"params": model.head.parameters(), "sam": False},
    ]
    opt = (
        SAM(groups, torch.optim.Adam, rho=0.05, lr=1e-3)
        if plastic
        else torch.optim.Adam(model.parameters(), lr=1e-3)
    )
    accuracies = []
    for stage in range(stages):
        if plastic and stage == stages // 2:
            reset_(model, ["head"], optimizer=opt)
        shifted = (labels + stage) % 10  # label adaptation: the targets move every stage
        for _ in range(iters):
            batch = train[torch.randint(len(train), (64,))]

            def closure(batch=batch, shifted=shifted):
                loss = F.cross_entropy(model(images[batch]), shifted[batch])
                loss.backward()
                return loss

            if plastic:
                opt.step(closure)
            else:
                opt.zero_grad()
                closure()
                opt.step()
        with torch.no_grad():
            accuracies.append((model(images[test]).argmax(1) == shifted[test]).float().mean().item())
    probe = images[test[:256]]
    head_batch = test[:64]
    return {
        "final_accuracy": accuracies[-1],
        "mean_accuracy": float(np.mean(accuracies)),
        "backbone_active": float(np.mean(list(metrics.active_units(model.backbone, probe).values()))),
        "head_active": float(
            np.mean(list(metrics.active_units(model.head, model.backbone(probe)).values()))
        ),
        "hessian_top_eigenvalue": metrics.hessian_top_eigenvalue(
            lambda: F.cross_entropy(model(images[head_batch]), labels[head_batch]),
            list(model.parameters()), iters=30,
        ),
        "feature_srank": metrics.srank(model.backbone(probe)),
    }


def run_demo(stages: int = 4, iters: int = 40, seed: int = 0) -> dict[str, dict[str, float]]:
    results = {}
    for name, plastic in (("vanilla", False), ("ln+crelu+sam+reset", True)):
        start = time.perf_counter()
        results[name] = _train(plastic, stages, iters, seed)
        results[name]["seconds"] = time.perf_counter() - start
        print(name, {k: round(v, 4) for k, v in results[name].items()}, flush=True)
    return results
