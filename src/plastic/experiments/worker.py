"""What a worker does with one job, on either backend: limit threads, send the run's output to
its own log file, run it, and turn any error into a result instead of an exception."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOG_NAME = "sweep.log"
TRACEBACK_LINES = 25


def set_thread_limits(threads: int) -> None:
    """One run per core by default: oversubscribed OpenMP threads slow small updates down by
    orders of magnitude. The environment variables only reach libraries not yet initialised,
    so the local backend also sets them before a worker starts."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Sends Python's ``sys.stdout``/``sys.stderr`` and file descriptors 1 and 2 (output of C
    libraries) to ``path``, and restores them afterwards (a Ray worker process runs many tasks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds, saved_streams = (os.dup(1), os.dup(2)), (sys.stdout, sys.stderr)
    with path.open("a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        try:
            yield
        finally:
            log.flush()
            sys.stdout, sys.stderr = saved_streams
            for fd, saved in zip((1, 2), saved_fds):
                os.dup2(saved, fd)
                os.close(saved)


def execute(job: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """Runs one job; returns ``{"id", "status": "finished"|"failed"|"held", "summary" | "error",
    "traceback", "seconds", "host"}``. Never raises for a failing run. "held": another process
    (another sweep over the same directory, say) runs it; this one left it alone. A run that
    another process finished since the sweep's plan comes back finished with ``"elsewhere": True``."""
    from plastic.experiments.benchmarks import get_benchmark
    from plastic.train.evaluate import without_per_game
    from plastic.train.lock import RunLockedError, holder, is_locked

    started = time.perf_counter()
    result: dict[str, Any] = {"id": job["id"], "host": os.uname().nodename}
    run_dir = Path(job["run_dir"])
    if is_locked(run_dir):  # before building the run (an Atari replay is 0.7 GB) or writing its log
        who = holder(run_dir)
        return {**result, "status": "held", "holder": who, "seconds": 0.0,
                "error": f"{who} is running the run in {run_dir}"}
    try:
        done = get_benchmark(job["benchmark"]).finished_summary(job)
    except Exception:  # whatever it is, the run itself meets it again below and reports it
        done = None
    if done is not None:
        return {**result, "status": "finished", "elsewhere": True, "seconds": 0.0,
                "summary": without_per_game(done)}
    try:
        set_thread_limits(threads)
        with output_to(run_dir / LOG_NAME):
            print(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {job['id']} on {result['host']}", flush=True)
            try:
                summary = get_benchmark(job["benchmark"]).run(job, threads)
            except RunLockedError as error:
                print(f"left alone: {error}", flush=True)
                raise
            except Exception:
                traceback.print_exc()  # into the run's log as well as the sweep's status
                raise
        result.update(status="finished", summary=without_per_game(summary))
    except RunLockedError as error:
        result.update(status="held", error=str(error), holder=holder(run_dir))
    except Exception as error:  # a failing run is a result, not the end of the sweep
        lines = traceback.format_exc().rstrip().splitlines()
        result.update(status="failed", error=f"{type(error).__name__}: {error}",
                      traceback="\n".join(lines[-TRACEBACK_LINES:]))
    result["seconds"] = time.perf_counter() - started
    return result
