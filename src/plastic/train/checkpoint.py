"""Atomic files: a crash mid-write leaves the previous version intact, never a torn file.

Files get the permissions a plain ``open`` would give them (0666 less the umask), not
``mkstemp``'s 0600, so that others on a shared file system can read the results. A write that
fails (a full disk, a read-only directory) raises ``WriteError`` naming the file and the reason; a
checkpoint that cannot be read raises ``CheckpointError`` naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch


class WriteError(OSError):
    """A run's file could not be written; its previous version, if any, is intact."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = Path(path)


class CheckpointError(RuntimeError):
    """A checkpoint that exists but cannot be read (truncated, garbage, empty)."""


def one_line(error: BaseException) -> str:
    """An exception's message on one line (torch's messages span several)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would, for a moment, for every thread)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _reason(error: BaseException, directory: Path) -> str:
    cause: BaseException | None = error
    while cause is not None:  # torch.save hides the file's OSError behind its own RuntimeError
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    try:  # torch.save reports a full disk as "[enforce fail at inline_container.cc:...] ..."
        free = f"; {shutil.disk_usage(directory).free / 2**20:.0f} MiB free on its file system"
    except OSError:
        free = ""
    return f"{one_line(error)}{free}"


def _atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:
        _discard(tmp)
        raise WriteError(path, _reason(error, path.parent)) from error
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: str | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):  # in a read-only directory it cannot go (or exist)
            Path(tmp).unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    _atomic_write(path, lambda f: f.write(json.dumps(data, indent=2, sort_keys=True).encode()))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except ValueError as error:  # a torn or hand-edited file: say which one
        raise ValueError(f"{path} is not valid JSON ({one_line(error)})") from None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    _atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        # weights_only=False: the checkpoint holds numpy arrays and RNG states written by us.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many kinds for a truncated or foreign file
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({one_line(error)[:200]}); no earlier checkpoint "
            "is kept: move it away or delete it to start the run over from step 0 (the same "
            "command then rewrites the run's logs), or put back a good copy to resume"
        ) from None
