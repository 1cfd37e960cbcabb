"""What a run was computed with: plastic's version and git commit, torch, Python, the CPU and GPU.

A run records this each time it starts or resumes (``summary.json``'s "provenance": one entry per
segment, with the agent step it started from), so a result carries the code that made it, also
when a run was resumed from a checkpoint by other code. The commit is read from the git checkout
that holds the imported package (an editable install or ``PYTHONPATH=.../src``); ``dirty`` says
whether that checkout's ``src/`` had uncommitted changes. Both are None for an installed wheel.
"""

from __future__ import annotations

import functools
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

import plastic
from plastic.runtime import cpu_model, denormals_are_flushed


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """``{"plastic": version, "commit": sha or None, "dirty": bool or None}``."""
    package = Path(plastic.__file__).resolve().parent
    top = _git(package, "rev-parse", "--show-toplevel")
    commit = dirty = None
    if top is not None and package.is_relative_to(Path(top).resolve()):
        commit = _git(package, "rev-parse", "HEAD")
        changes = _git(Path(top), "status", "--porcelain", "--untracked-files=no", "--", "src")
        dirty = None if changes is None else bool(changes)
    return {"plastic": plastic.__version__, "commit": commit, "dirty": dirty}


def describe(device: torch.device, step: int) -> dict[str, Any]:
    """One segment of a run: where it starts (agent ``step``), when, and with what."""
    return {
        "from_step": step, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **code_version(),
        "torch": torch.__version__, "python": platform.python_version(), "cpu": cpu_model()[0],
        "cpu_simd": list(cpu_model()[1]), "threads": torch.get_num_threads(),
        "denormals_flushed": denormals_are_flushed(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
