"""One process per run directory: an exclusive ``flock`` on ``RUN_DIR/.lock``, held while it runs.

The lock goes with the process (the kernel releases it when the process dies, however it dies),
so a killed run never leaves a stale lock behind. The file holds the holder's pid, for the message
another process gets. ``plastic status`` tells a running run by trying the lock for an instant; a
run starting in that instant tries again for a moment rather than fail (a real holder keeps it for
the whole run).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from plastic.train.checkpoint import WriteError

LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    """Another process holds the run directory."""


def _try_lock(fd: int, attempts: int = 10, pause: float = 0.05) -> bool:
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < attempts:
                time.sleep(pause)
    return False


def is_locked(run_dir: Path) -> bool:
    """Whether a process holds ``run_dir``'s lock now, found by trying it (shared) for an instant."""
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the lock if this call took it
    return False


def holder(run_dir: Path) -> str:
    """'another process (pid N)': who holds ``run_dir``'s lock, as its lock file says."""
    try:
        pid = (run_dir / LOCK_NAME).read_text(errors="replace").strip()
    except OSError:
        pid = ""
    return f"another process (pid {pid})" if pid.isdigit() else "another process"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the ``with`` block, or raise ``RunLockedError`` (after ≈ 0.5 s)."""
    path = run_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise WriteError(path, error.strerror or str(error)) from error
    try:
        if not _try_lock(fd):
            raise RunLockedError(
                f"{holder(run_dir)} is running the run in {run_dir}; wait for it to finish or stop it, "
                "then run the same command again") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError:
            pass  # the pid only makes the other process's message more helpful
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block, waiting
    for it: for short read-modify-writes of a file that several processes update."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
