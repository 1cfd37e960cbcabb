"""Where a sweep's runs execute: local worker processes, or tasks on a Ray cluster.

Both take the same jobs (see ``benchmarks``) and report each result through a callback as soon as
it arrives, so the sweep can record progress and failures while the others keep running.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import multiprocessing.connection
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from plastic.experiments.worker import execute

OnStart = Callable[[dict[str, Any]], None]
OnResult = Callable[[dict[str, Any]], None]
OnTick = Callable[[], None]
TICK_SECONDS = 30.0  # how often a backend that has nothing to report lets the sweep speak
STOP_GRACE_SECONDS = 300.0  # an interrupted sweep's wait for its runs to checkpoint and exit
BACKENDS = ("local", "ray")


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The GPU ids runs may use: ``CUDA_VISIBLE_DEVICES`` if set, else every CUDA device."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip() and gpu.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


def parse_resources(text: str | None) -> dict[str, float]:
    """``"cpu=1,gpu=0.5"`` -> ``{"cpu": 1.0, "gpu": 0.5}``; other names are Ray custom resources."""
    resources = {"cpu": 1.0, "gpu": 0.0}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        try:
            amount = float(value)
        except ValueError:
            amount = math.nan
        if not sep or not name or not amount >= 0:
            raise ValueError(f"--resources expects NAME=AMOUNT[,NAME=AMOUNT...] with AMOUNT >= 0 "
                             f"(names: cpu, gpu or a Ray custom resource), got {item!r}")
        resources[name] = amount
    if resources["cpu"] <= 0 and resources["gpu"] <= 0:
        raise ValueError("--resources: a run needs cpu > 0 or gpu > 0")
    return resources


@dataclass
class LocalBackend:
    """Runs each job in its own fresh process (spawn), at most ``workers`` at a time.

    A process per run keeps runs isolated: one that crashes or is killed (out of memory, say)
    fails alone and its slot is reused, where a broken process pool would take the others down.
    On a machine with several GPUs each run sees one (``CUDA_VISIBLE_DEVICES``), the least busy.
    """

    workers: int = 0  # 0: one per available core, divided by threads
    threads: int = 1
    gpus: list[str] | None = None  # GPU ids to spread runs over; None: the visible ones

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"threads per run must be >= 1, got {self.threads}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0: as many as the cores allow), got {self.workers}")
        if self.workers == 0:
            self.workers = max(1, available_cpus() // self.threads)
        if self.gpus is None:
            self.gpus = visible_gpus()

    def describe(self) -> str:
        spread = f", spread over GPUs {','.join(self.gpus)}" if len(self.gpus or []) > 1 else ""
        return f"local, {self.workers} worker(s) × {self.threads} thread(s){spread}"

    def _pick_gpu(self, busy: Sequence[str | None]) -> str | None:
        if len(self.gpus or []) < 2:
            return None  # nothing to spread (one GPU or none): leave the environment alone
        return min(self.gpus, key=lambda gpu: (sum(b == gpu for b in busy), self.gpus.index(gpu)))

    def run(self, jobs: Sequence[dict[str, Any]], on_start: OnStart, on_result: OnResult,
            on_tick: OnTick | None = None) -> None:
        context = mp.get_context("spawn")
        pending = list(jobs)
        running: dict[int, tuple[Any, Any, dict[str, Any]]] = {}  # sentinel -> (process, pipe, job)
        gpu_of: dict[int, str | None] = {}
        try:
            while pending or running:
                while pending and len(running) < self.workers:
                    job = pending.pop(0)
                    gpu = self._pick_gpu(list(gpu_of.values()))
                    process, pipe = self._start(context, job, gpu)
                    running[process.sentinel] = (process, pipe, job)
                    gpu_of[process.sentinel] = gpu
                    on_start(job)
                waitables = [p.sentinel for p, _, _ in running.values()] + [c for _, c, _ in running.values()]
                ready = set(mp.connection.wait(waitables, timeout=TICK_SECONDS))
                if not ready and on_tick is not None:
                    on_tick()
                for sentinel, (process, pipe, job) in list(running.items()):
                    if sentinel in ready or pipe in ready:
                        result = self._collect(process, pipe, job)
                        if result is not None:
                            del running[sentinel], gpu_of[sentinel]
                            on_result(result)
        finally:
            # Interrupted: stop what still runs. SIGTERM lets a run finish its step and checkpoint
            # it (plastic.train.stop), which may take an evaluation's time: wait that long.
            for process, _, _ in running.values():
                process.terminate()
            if running:
                print(f"waiting for {len(running)} running run(s) to checkpoint where they are "
                      "(Ctrl-C again to stop them at once)", file=sys.stderr, flush=True)
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            for process, pipe, _ in running.values():
                process.join(timeout=max(0.0, deadline - time.monotonic()))
                if process.is_alive():
                    process.kill()
                pipe.close()

    def _start(self, context: Any, job: dict[str, Any], gpu: str | None) -> tuple[Any, Any]:
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_child, args=(job, self.threads, send), daemon=False,
                                  name=f"plastic-sweep:{job['id']}")
        # A spawned child inherits the environment at start: limit OpenMP before torch loads.
        environment = {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        if gpu is not None:
            environment["CUDA_VISIBLE_DEVICES"] = gpu
        saved = {k: os.environ.get(k) for k in environment}
        os.environ.update(environment)
        try:
            process.start()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        send.close()
        return process, receive

    @staticmethod
    def _collect(process: Any, pipe: Any, job: dict[str, Any]) -> dict[str, Any] | None:
        """The job's result once its process has sent it or died; None while it still runs."""
        if pipe.poll():  # a result, or end of file if the child died without sending one
            try:
                result = pipe.recv()
            except EOFError:
                result = None
            process.join()
            pipe.close()
            if result is not None:
                return result
        elif process.is_alive():
            return None
        else:
            process.join()
            pipe.close()
        code = process.exitcode
        reason = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return {"id": job["id"], "status": "failed", "seconds": None, "traceback": "",
                "error": f"worker process died without a result ({reason}; out of memory?)"}


def _child(job: dict[str, Any], threads: int, pipe: Any) -> None:
    try:
        pipe.send(execute(job, threads))
    except KeyboardInterrupt as stop:  # a Ctrl-C to the whole process group: the sweep reports it
        if str(stop):  # a run that stopped with a checkpoint (plastic.train.stop), maybe alone:
            # a result, not "died without a result"; the sweep run again resumes it
            with contextlib.suppress(OSError):
                pipe.send({"id": job["id"], "status": "failed", "seconds": None, "traceback": "",
                           "error": str(stop)})
        return
    pipe.close()


@dataclass
class RayBackend:
    """Submits each job as a Ray task with ``resources`` (cpu, gpu, custom) per run.

    ``address`` None starts a private local Ray instance (``num_cpus`` = workers × cpu per run)
    and shuts it down afterwards; otherwise connects to that cluster (``"auto"``: the one
    ``ray start`` made on this machine). On a cluster every node needs plastic installed and the
    sweep's output directory on a shared file system.
    """

    address: str | None = None
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0, "gpu": 0.0})
    workers: int = 0  # local Ray only: how many runs at once (0: as many as the cores allow)
    threads: int = 1

    def describe(self) -> str:
        where = f"Ray cluster at {self.address}" if self.address else "local Ray"
        per_run = ", ".join(f"{k}={v:g}" for k, v in self.resources.items() if v)
        return f"{where}, {per_run} per run"

    def _init(self) -> None:
        import ray

        if ray.is_initialized():
            return
        if self.address:
            ray.init(address=self.address, log_to_driver=False)
            return
        cpu = max(self.resources["cpu"], 1e-3)
        workers = self.workers or max(1, int(available_cpus() // cpu))
        gpus = math.ceil(workers * self.resources["gpu"])
        ray.init(num_cpus=max(1, math.ceil(workers * cpu)), num_gpus=gpus, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)

    def run(self, jobs: Sequence[dict[str, Any]], on_start: OnStart, on_result: OnResult,
            on_tick: OnTick | None = None) -> None:
        try:
            import ray
        except ImportError as error:
            raise RuntimeError("the Ray backend needs Ray: pip install 'ray[default]>=2.9,<3' "
                               "(or plastic[ray])") from error
        started_here = not ray.is_initialized()
        self._init()
        try:
            custom = {k: v for k, v in self.resources.items() if k not in ("cpu", "gpu") and v}
            task = ray.remote(execute).options(
                num_cpus=self.resources["cpu"], num_gpus=self.resources["gpu"],
                resources=custom or None, max_retries=1,  # a lost node: run again (it resumes)
            )
            refs = {}
            for job in jobs:
                refs[task.remote(job, self.threads)] = job
                on_start(job)
            try:
                while refs:
                    ready, _ = ray.wait(list(refs), num_returns=1, timeout=TICK_SECONDS)
                    if not ready and on_tick is not None:
                        on_tick()
                    for ref in ready:
                        job = refs.pop(ref)
                        try:
                            result = ray.get(ref)
                        except Exception as error:  # the task's worker or node died
                            result = {"id": job["id"], "status": "failed", "seconds": None, "traceback": "",
                                      "error": f"Ray task failed: {type(error).__name__}: {error}"}
                        on_result(result)
            finally:
                _stop_ray_tasks(ray, list(refs))
        finally:
            if started_here:
                ray.shutdown()


def _stop_ray_tasks(ray: Any, refs: list[Any]) -> None:
    """An interrupted Ray sweep: its unfinished tasks are cancelled gently, which drops the queued
    ones and interrupts a running one's main thread as a Ctrl-C would (its run finishes its step
    and checkpoints there: plastic.train.stop); a task still going after STOP_GRACE_SECONDS, or
    every task at a second Ctrl-C, is killed (it resumes from its last checkpoint)."""
    if not refs:
        return
    for ref in refs:
        ray.cancel(ref, force=False)
    print(f"waiting for {len(refs)} unfinished run(s): running ones checkpoint where they are, "
          "queued ones are dropped (Ctrl-C again to stop them at once)", file=sys.stderr, flush=True)
    stuck = refs
    try:
        _, stuck = ray.wait(refs, num_returns=len(refs), timeout=STOP_GRACE_SECONDS)
    finally:
        for ref in stuck:
            ray.cancel(ref, force=True)


def make_backend(name: str, *, workers: int = 0, threads: int | None = None, address: str | None = None,
                 resources: dict[str, float] | None = None) -> LocalBackend | RayBackend:
    resources = resources or {"cpu": 1.0, "gpu": 0.0}
    threads = threads or max(1, math.ceil(resources["cpu"]))
    if name == "local":
        if address:
            raise ValueError("--address is for the Ray backend; add --backend ray")
        return LocalBackend(workers=workers, threads=threads)
    if name == "ray":
        return RayBackend(address=address, resources=resources, workers=workers, threads=threads)
    raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(BACKENDS)}")
