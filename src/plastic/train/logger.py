"""Metrics to CSV files (one per stream) and TensorBoard, truncated consistently on resume."""

from __future__ import annotations

import contextlib
import csv
import io
import math
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from plastic.train.checkpoint import _atomic_write


class RunLogger:
    """``log(stream, step, values)`` appends a row to ``<stream>.csv`` and scalars to TensorBoard.

    A stream's columns are set by its first row; later rows may omit columns (left empty), and a
    row with new columns widens the file's header (earlier rows left empty there), e.g. when a run
    logged by an older version resumes. ``truncate(step)`` drops rows after ``step`` — what a resumed run
    will log again — from every CSV and (via purge_step) from TensorBoard.
    """

    def __init__(self, run_dir: Path, *, tensorboard: bool = True, resume_step: int | None = None):
        self.run_dir = run_dir
        self._columns: dict[str, list[str]] = {}
        if resume_step is not None:
            self._truncate(resume_step)
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides events at and after it: those after resume_step are logged again
            purge = None if resume_step is None else resume_step + 1
            self._writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge)
        self._wandb = None

    def attach_wandb(self, run: Any) -> None:
        self._wandb = run

    def _truncate(self, step: int) -> None:
        for path in self.run_dir.glob("*.csv"):
            with path.open(newline="") as handle:
                rows = list(csv.reader(handle))
            if not rows:
                continue
            header, body = rows[0], rows[1:]
            _write_csv(path, header, [r for r in body if r and float(r[0]) <= step])

    def log(self, stream: str, step: int, values: dict[str, Any]) -> None:
        with interrupt_deferred():
            self._log(stream, step, values)

    def _log(self, stream: str, step: int, values: dict[str, Any]) -> None:
        values = {k: _scalar(v) for k, v in values.items()}
        path = self.run_dir / f"{stream}.csv"
        columns = self._columns.get(stream)
        if columns is None:
            if path.exists() and path.stat().st_size > 0:
                with path.open(newline="") as handle:
                    columns = next(csv.reader(handle))[1:]
            else:
                columns = list(values)
                with path.open("w", newline="") as handle:
                    csv.writer(handle).writerow(["step", *columns])
            self._columns[stream] = columns
        added = [c for c in values if c not in columns]
        if added:
            columns = self._columns[stream] = [*columns, *added]
            with path.open(newline="") as handle:
                body = list(csv.reader(handle))[1:]
            _write_csv(path, ["step", *columns], [row + [""] * len(added) for row in body])
        with path.open("a", newline="") as handle:
            csv.writer(handle).writerow([step, *(_fmt(values.get(c)) for c in columns)])
        if self._writer is not None:
            for key, value in values.items():
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    self._writer.add_scalar(f"{stream}/{key}", value, step)
        if self._wandb is not None:
            self._wandb.log({f"{stream}/{k}": v for k, v in values.items()}, step=step)

    def close(self) -> None:
        if self._writer is not None:
            with interrupt_deferred():
                self._writer.close()


@contextlib.contextmanager
def interrupt_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) or SIGTERM back until the block has run, then deliver it as usual.

    TensorBoard's writer hands each event to its thread through a queue; a KeyboardInterrupt raised
    inside the queue's wake-up call can lose the wake-up, and closing the writer then waits out its
    thread's flush timer (up to 120 s): a stopped run hung that long, about once in 25 Ctrl-Cs.
    SIGTERM too: while a run stops (``plastic.train.stop``), a second one raises there.
    Only the main thread receives signals, so elsewhere the block just runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # None: a handler installed outside Python, which could not be put back
    previous = {signum: handler for signum in (signal.SIGINT, signal.SIGTERM)
                if (handler := signal.getsignal(signum)) is not None}
    received: list[int] = []
    for signum in previous:
        signal.signal(signum, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in received:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)  # Python's default SIGINT handler raises KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue()
    _atomic_write(path, lambda f: f.write(text.encode()))


def _scalar(value: Any) -> float | int | None:
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def read_csv(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as handle:
        return [{k: float(v) if v != "" else math.nan for k, v in row.items()}
                for row in csv.DictReader(handle)]
