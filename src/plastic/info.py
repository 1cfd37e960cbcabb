"""What this machine offers plastic: versions, the CPU (and what sets its speed apart), the GPUs,
and whether each suite's environments can be made here, with what to install where they cannot.

``plastic info`` prints it; ``plastic info --json`` prints the same as one JSON object. Each suite
is checked by making the environment a run would make (DMC from pixels, so headless rendering is
tried too) and resetting it once, not by importing its library: a library that imports but cannot
load its ROMs or its GL backend fails here as it would in a run.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import torch

import plastic
from plastic.errors import MissingDependencyError
from plastic.runtime import cpu_has_native_bf16, cpu_model
from plastic.suites import SUITES

# The environment each suite's check makes (any of the suite's games would tell the same).
CHECK_GAMES = {"atari": "pong", "minatar": "breakout", "dmc": "cartpole-swingup"}


def check_suite(suite: str, game: str | None = None) -> dict[str, Any]:
    """``{"ok": True, "game": ..., "seconds": ...}`` once ``game``'s environment (``suite``'s check
    game by default) was made with the default config's settings and reset, else ``{"ok": False,
    "error": one line}`` (for a missing library: what to install)."""
    from plastic.configs import build_config

    game = game or CHECK_GAMES[suite]
    started = time.perf_counter()
    try:
        config = build_config(suite, game, "drq")
        entry = SUITES[suite]
        env = entry.make_env(config.game, 0, train=True, **entry.env_kwargs(config))
        try:
            env.reset(seed=0)
        finally:
            env.close()
    except Exception as error:  # a check reports whatever stops the env, never a traceback
        kind = "" if isinstance(error, MissingDependencyError) else f"{type(error).__name__}: "
        message = kind + (" ".join(str(error).split()) or "no message")
        return {"ok": False, "game": game, "error": message}
    return {"ok": True, "game": game, "seconds": round(time.perf_counter() - started, 2)}


def gather(suites: list[str] | None = None) -> dict[str, Any]:
    """Everything ``plastic info`` reports, as a dict."""
    name, simd = cpu_model()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    return {
        "plastic": plastic.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu": name,
        "cpu_simd": list(simd),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cores": os.cpu_count(),
        "gpus": gpus,
        "suites": {suite: check_suite(suite) for suite in (suites or list(SUITES))},
    }


def info_text(info: dict[str, Any]) -> str:
    lines = [
        f"plastic {info['plastic']}, Python {info['python']}, torch {info['torch']}"
        + (f" (CUDA {info['cuda']})" if info["cuda"] else " (no CUDA build)"),
        f"CPU: {info['cpu']}, {info['cores']} cores; "
        + (f"SIMD: {', '.join(info['cpu_simd'])}" if info["cpu_simd"] else "SIMD flags unknown")
        + ("; native bf16 (train.precision=bf16 can pay on Atari)" if info["cpu_native_bf16"]
           else "; no native bf16 (train.precision=bf16 is emulated, slower than fp32)"),
        "GPUs: " + (", ".join(f"cuda:{i} {name}" for i, name in enumerate(info["gpus"]))
                    if info["gpus"] else "none (runs use the CPU)"),
        "suites:",
    ]
    for suite, check in info["suites"].items():
        if check["ok"]:
            lines.append(f"  {suite:<8} ok ({check['game']} made and reset in {check['seconds']:.1f} s)")
        else:
            lines.append(f"  {suite:<8} NOT usable ({check['game']}): {check['error']}")
    return "\n".join(lines)
