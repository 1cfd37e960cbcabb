"""Ask a run to stop at the next step boundary, so that it can write a checkpoint first.

Without this, SIGTERM (``kill``, a job scheduler's time limit, a sweep's ``stop``) ends the process
at once and Ctrl-C raises ``KeyboardInterrupt`` wherever the loop happens to be: either way the run
loses what it did since its last checkpoint (up to ``train.checkpoint_interval`` steps; 2,500 Atari
steps are some 4 minutes of a CPU). While the block runs, the first SIGTERM or SIGINT only records
its request; the loop checks ``requested`` after each step, checkpoints and stops. The same signal
again is an impatient user (a second Ctrl-C): it raises ``KeyboardInterrupt`` at once (the last
checkpoint still holds). The other signal while stopping is ignored: a Ctrl-C reaches a sweep's
workers and the sweep itself, which then sends each worker a SIGTERM, and that must not cut the
worker's checkpoint short.

Signals reach only the main thread, so elsewhere (a thread pool, some Ray workers) the block
installs nothing and the process behaves as before. A signal that was ignored when the block began
(``nohup`` and ``&`` ignore SIGINT in background jobs) stays ignored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """The first stop signal received inside ``stop_requests``, if any."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""

    def _receive(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signum
            # os.write, not print: the signal may have landed inside a print to the same stream
            os.write(2, f"plastic: {self.name}: stopping at the end of this step, with a checkpoint "
                        f"(the same signal again stops at once)\n".encode())
        elif signum == self.signal:
            raise KeyboardInterrupt


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    # None: a handler installed outside Python, which could not be put back afterwards
    taken = [signum for signum, handler in previous.items()
             if handler is not None and handler != signal.SIG_IGN]
    for signum in taken:
        signal.signal(signum, request._receive)
    try:
        yield request
    finally:
        for signum in taken:
            signal.signal(signum, previous[signum])
