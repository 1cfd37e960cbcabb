"""Thread settings for small-batch RL on a few CPU cores (measurements in benchmarks/README.md).

An RL update at batch 32 is a few hundred small operations. With several intra-op threads,
each operation ends at an OpenMP barrier; when another process holds a core, the thread waiting
there (spinning, by default) waits for a whole scheduler time slice. On the shared 2-core
machine (load 5-7) two threads made a MinAtar update 10x and an Atari update 5x slower than one
thread; ``OMP_WAIT_POLICY=PASSIVE`` removes most of the spinning but one thread was still
fastest. So plastic runs one intra-op thread on CPU unless told otherwise; to use more cores,
run more seeds side by side (``plastic sweep``), which scales without barriers.

``OMP_WAIT_POLICY`` is read when torch loads its OpenMP runtime, so it has to be in the
environment before ``import torch`` (e.g. set by ``plastic/__init__.py`` or the shell).
"""

from __future__ import annotations

import torch


def default_threads(device: torch.device | str) -> int:
    """plastic's intra-op thread count: 1 on CPU (see the module docstring), torch's own elsewhere."""
    return 1 if torch.device(device).type == "cpu" else torch.get_num_threads()


def configure_threads(threads: int | None, device: torch.device | str = "cpu") -> int:
    """Set torch's intra-op threads: ``threads`` if positive, plastic's default if 0 or None.

    Returns the number of threads now in use.
    """
    if threads is not None and (not isinstance(threads, int) or threads < 0):
        raise ValueError(f"threads must be 0 (plastic's default) or a positive integer, got {threads!r}")
    wanted = threads if threads else default_threads(device)
    if wanted != torch.get_num_threads():
        torch.set_num_threads(wanted)
    return torch.get_num_threads()
