"""Atomic files: a crash mid-write leaves the previous version intact, never a torn file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    _atomic_write(path, lambda f: f.write(json.dumps(data, indent=2, sort_keys=True).encode()))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    _atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    # weights_only=False: the checkpoint holds numpy arrays and RNG states written by us.
    return torch.load(path, map_location="cpu", weights_only=False)
