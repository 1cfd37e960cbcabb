"""Where plastic computes: the torch device, the number of intra-op threads, and how the C library
keeps the memory of freed tensors.

Device: ``resolve_device`` turns ``auto | cpu | cuda | cuda:N`` into a ``torch.device`` (auto:
CUDA when torch sees a GPU), and refuses a GPU that is not there; ``cpu_has_native_bf16`` says
whether bf16 on this CPU is native or emulated (``train.precision=bf16``).

Threads, for small-batch RL on a few CPU cores (measurements in benchmarks/README.md). An RL
update at batch 32 is a few hundred small operations. With several intra-op threads, each
operation ends at an OpenMP barrier; when another process holds a core, the thread waiting there
(spinning, by default) waits for a whole scheduler time slice. On the shared 2-core machine
(load 5-7) two threads made a MinAtar update 10x and an Atari update 5x slower than one thread;
``OMP_WAIT_POLICY=PASSIVE`` removes most of the spinning but one thread was still fastest. So
plastic runs one intra-op thread unless told otherwise; to use more cores, run more seeds
side by side (``plastic sweep``), which scales without barriers. On a GPU too: there the host
only launches kernels and does the replay's small numpy and tensor work, and torch's default (one
thread per core) made it spin. On an H200 with 16 cores, a batch-32 Atari update (eager, fp32)
took 13.3 ms with 16 threads (161 ms of CPU time per update) and 7.9 ms with one; plastic's,
24.0 and 14.9 ms.

``OMP_WAIT_POLICY`` is read when torch loads its OpenMP runtime, so it has to be in the
environment before ``import torch`` (e.g. set in the shell that starts plastic).

Subnormal floats (``denormals_flushed``): on x86 CPUs an operation that reads or makes a float32
below 1.2e-38 takes a slow microcode path, tens of times slower than a normal one. Training makes
many: Adam's first moment of a weight that gets no gradient (a dead ReLU unit's) shrinks by β1 =
0.9 each update, passing through the subnormal range for about 150 updates on its way to zero. In
a DrQ run's checkpoint at step 12,500 (Atari KungFuMaster) 22-27 % of the moments of the large
linear layers were subnormal; from it an update took 1.35-1.45x longer with them kept than
flushed to zero, and left the same parameters, bit for bit (benchmarks/README.md). Flushing
changes only values below 1.2e-38, far below anything that moves a weight here (Adam divides by
sqrt(v) + ε, ε ≥ 1e-8).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import platform
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import torch


# ----------------------------------------------------------------------------------- the device
def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N")
    return torch.device(device)


SIMD_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # what sets our CPU timings apart
CPUINFO = Path("/proc/cpuinfo")


@functools.lru_cache(maxsize=1)
def cpu_model() -> tuple[str, tuple[str, ...]]:
    """The CPU's model name and which of ``SIMD_FLAGS`` it has (Linux: /proc/cpuinfo; elsewhere
    what ``platform`` says, and no flags)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        text = ""
    name = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    present = set(flags.group(1).split()) if flags else set()
    return (name.group(1).strip() if name else platform.processor() or platform.machine(),
            tuple(flag for flag in SIMD_FLAGS if flag in present))


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (Linux: the avx512_bf16 or amx_bf16 flag)."""
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_model()[1]))


# ---------------------------------------------------------------------------------- the threads
def default_threads() -> int:
    """plastic's intra-op thread count: 1, on CPU and GPU alike (see the module docstring)."""
    return 1


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads: ``threads`` if positive, plastic's default if 0 or None.

    Returns the number of threads now in use.
    """
    if threads is not None and (not isinstance(threads, int) or threads < 0):
        raise ValueError(f"threads must be 0 (plastic's default) or a positive integer, got {threads!r}")
    wanted = threads if threads else default_threads()
    if wanted != torch.get_num_threads():
        torch.set_num_threads(wanted)
    return torch.get_num_threads()


# ------------------------------------------------------------------------------ subnormal floats
def denormals_are_flushed() -> bool:
    """Whether this thread's CPU arithmetic flushes subnormal floats to zero (x86 FTZ/DAZ)."""
    return bool((torch.tensor([1e-39]) * 1.5).item() == 0.0)


@contextlib.contextmanager
def denormals_flushed(enabled: bool = True) -> Iterator[bool]:
    """Flush subnormal floats to zero on the CPU (``enabled``) or keep them, until the block ends,
    then restore what was there. Yields whether they are flushed inside the block (False on a CPU
    that cannot flush them). CUDA is not affected.

    The setting is per thread, and a new thread copies its creator's: torch's intra-op threads
    follow it only if they start inside the block (in a fresh process, before the first
    multithreaded operation), which is how a training run sets it. With ``train.threads`` > 1 in a
    process whose threads already ran, only the calling thread's share of each operation flushes:
    slower, and still deterministic."""
    before = denormals_are_flushed()
    if enabled != before:
        torch.set_flush_denormal(enabled)
    try:
        yield denormals_are_flushed()
    finally:
        if denormals_are_flushed() != before:
            torch.set_flush_denormal(before)


# ------------------------------------------------------------------------------------ the memory
# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
HEAP_ALLOCATIONS_BELOW = 32 << 20  # glibc's largest allowed M_MMAP_THRESHOLD on 64-bit
KEEP_FREED_UP_TO = 1 << 30


def keep_freed_memory() -> bool:
    """Let glibc serve allocations below 32 MB from its heap and keep freed memory for reuse.

    An update allocates and frees many tensors of a few MB (an Atari noisy layer's weight is
    3.2 MB). By default glibc maps each such block fresh from the kernel and returns it when freed,
    so the next update pays a page fault per 4 kB page again: about 5,900 faults and 13 ms of
    system time per Atari plastic update (benchmarks/README.md). Kept, the same update faults
    about 150 times. The cost is that the process keeps its peak heap. Returns whether it applied
    (glibc on Linux; a no-op elsewhere). It changes no result, only time.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl)
    return bool(mallopt(_M_MMAP_THRESHOLD, HEAP_ALLOCATIONS_BELOW)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_UP_TO))
