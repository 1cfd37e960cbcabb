"""One process per run directory: an exclusive ``flock`` on ``RUN_DIR/.lock``, held while it runs.

The lock goes with the process (the kernel releases it when the process dies, however it dies),
so a killed run never leaves a stale lock behind. The file holds the holder's pid, for the message
another process gets.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from plastic.train.checkpoint import WriteError

LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    """Another process holds the run directory."""


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the ``with`` block, or raise ``RunLockedError`` at once."""
    path = run_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise WriteError(path, error.strerror or str(error)) from error
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip()
            holder = f"another process (pid {pid})" if pid.isdigit() else "another process"
            raise RunLockedError(
                f"{holder} is running the run in {run_dir}; wait for it to finish or stop it, "
                "then run the same command again") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError:
            pass  # the pid only makes the other process's message more helpful
        yield
    finally:
        os.close(fd)  # releases the lock
