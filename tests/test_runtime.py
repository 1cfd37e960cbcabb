"""plastic.runtime: freed tensors' memory is kept for reuse (no page fault per page per update);
one torch thread by default; subnormal floats flushed to zero where asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from plastic import runtime

# Minor page faults of three Atari plastic updates (1 thread), before and after keep_freed_memory.
FAULTS_OF_UPDATES = """
import resource, sys, torch
sys.path.insert(0, sys.argv[1])
from reference_learner import make_config, synthetic_batch
from plastic.agents.rainbow import RainbowAgent
from plastic.runtime import keep_freed_memory

torch.set_num_threads(1)
agent = RainbowAgent(make_config("atari", "plastic", 32, "cpu"), (4, 84, 84), 18, torch.device("cpu"))
batch = synthetic_batch((4, 84, 84), 18, 32, 256)

def faults():
    agent.update(batch)  # warm up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        agent.update(batch)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3

default = faults()
applied = keep_freed_memory()
print(applied, default, faults())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_freed_memory_takes_few_page_faults_per_update():
    # In a child process: the setting is for the whole process and cannot be undone.
    tests_dir = str(Path(__file__).resolve().parent)
    out = subprocess.run([sys.executable, "-c", FAULTS_OF_UPDATES, tests_dir], capture_output=True,
                         text=True, check=True).stdout.split()
    applied, default, kept = out[0] == "True", int(out[1]), int(out[2])
    if not applied:
        pytest.skip("not glibc")
    # glibc's default hands freed blocks back and faults them in again: thousands per update.
    assert default > 1000 and kept < default / 10, (default, kept)


def test_keep_freed_memory_is_a_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert runtime.keep_freed_memory() is False


def test_threads_default_to_one_and_a_positive_count_is_kept():
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert runtime.configure_threads(0) == 1  # also where a GPU trains: torch's default spun
        assert runtime.configure_threads(3) == 3
        assert runtime.configure_threads(None) == 1
        with pytest.raises(ValueError, match="positive integer"):
            runtime.configure_threads(-1)
    finally:
        torch.set_num_threads(before)


def subnormal_product() -> float:
    import torch

    return (torch.tensor([1e-20]) * torch.tensor([1e-20])).item()  # 1e-40: subnormal in float32


def test_denormals_are_flushed_inside_the_block_only():
    import torch

    assert not runtime.denormals_are_flushed()
    assert subnormal_product() == pytest.approx(1e-40, rel=1e-4)  # kept: IEEE gradual underflow
    with runtime.denormals_flushed() as flushed:
        if not flushed:
            pytest.skip("this CPU cannot flush subnormal floats")
        assert subnormal_product() == 0.0 and runtime.denormals_are_flushed()
        normal = (torch.tensor([3e-38]) * torch.tensor([0.5])).item()  # 1.5e-38: still a normal float
        assert normal == pytest.approx(1.5e-38, rel=1e-6)
        with runtime.denormals_flushed(False) as inner:
            assert not inner and subnormal_product() == pytest.approx(1e-40, rel=1e-4)
        assert runtime.denormals_are_flushed()  # the outer block's setting is back
    assert not runtime.denormals_are_flushed() and subnormal_product() != 0.0


# How many of 4M subnormal products two intra-op threads leave subnormal, the block entered before
# or after the threads first ran (argv[1]).
FLUSH_IN_THREADS = """
import sys, torch
from plastic.runtime import denormals_flushed
torch.set_num_threads(2)
if sys.argv[1] == "after":
    torch.ones(1 << 22).sum()  # the intra-op threads start here
with denormals_flushed() as flushed:
    x = torch.full((1 << 22,), 1e-20)
    print(flushed, int(((x * x) != 0).sum()))
"""


def test_intra_op_threads_flush_when_they_start_inside_the_block():
    def left(when: str) -> tuple[bool, int]:
        out = subprocess.run([sys.executable, "-c", FLUSH_IN_THREADS, when], capture_output=True,
                             text=True, check=True).stdout.split()
        return out[0] == "True", int(out[1])

    flushed, kept = left("before")
    if not flushed:
        pytest.skip("this CPU cannot flush subnormal floats")
    assert kept == 0  # a training run enters the block first: every thread flushes
    # threads started before keep their own setting: only the calling thread's share flushes
    assert 0 < left("after")[1] < 1 << 22
