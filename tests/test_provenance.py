"""summary.json's "provenance": the code and machine of every start and resume of a run."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from plastic import provenance, runtime
from plastic.cli import main
from test_cli_user import stop_at_step, train_args

ROOT = Path(__file__).resolve().parents[1]


def checkout_commit() -> str | None:
    if shutil.which("git") is None:
        return None
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def test_the_commit_is_the_checkouts_that_holds_the_package():
    commit = checkout_commit()
    if commit is None or not Path(provenance.plastic.__file__).resolve().is_relative_to(ROOT):
        pytest.skip("plastic is not imported from a git checkout here")
    provenance.code_version.cache_clear()
    version = provenance.code_version()
    # dirty: tracked files under src/ differ from the commit (asked of git another way)
    differs = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "src"]).returncode
    assert version["commit"] == commit and version["dirty"] is (differs == 1)
    assert version["plastic"] == provenance.plastic.__version__


def test_cpu_model_and_simd_flags_from_cpuinfo(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse avx2 avx512f "
                       "avx512bw avx512_bf16\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9R14\n")
    monkeypatch.setattr(runtime, "CPUINFO", cpuinfo)
    runtime.cpu_model.cache_clear()
    try:
        assert runtime.cpu_model() == ("AMD EPYC 9R14", ("avx2", "avx512f", "avx512_bf16"))
        assert runtime.cpu_has_native_bf16()
        cpuinfo.write_text("model name\t: Intel Xeon\nflags\t\t: fpu avx2\n")
        runtime.cpu_model.cache_clear()
        assert runtime.cpu_model() == ("Intel Xeon", ("avx2",)) and not runtime.cpu_has_native_bf16()
    finally:
        runtime.cpu_model.cache_clear()


def test_a_resumed_run_records_each_segment(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    stop_at_step(monkeypatch, 250)  # checkpoints every 100 steps: resumes at 200
    assert main(train_args(run_dir)) == 130
    monkeypatch.undo()
    real = provenance.code_version()
    monkeypatch.setattr(provenance, "code_version", lambda: {**real, "commit": "feedbeef", "dirty": False})
    # a speed setting, like train.threads: the run resumes with another value, and records it
    assert main(train_args(run_dir, 300, "--set", "train.flush_denormal=false")) == 0
    segments = json.loads((run_dir / "summary.json").read_text())["provenance"]
    assert [s["from_step"] for s in segments] == [0, 200]
    assert segments[0]["commit"] == real["commit"] and segments[1]["commit"] == "feedbeef"
    for segment in segments:
        assert segment["torch"] == torch.__version__ and segment["threads"] == 1
        assert segment["cpu"] == runtime.cpu_model()[0] and segment["gpu"] is None
    with runtime.denormals_flushed() as can_flush:
        pass
    # flushed while the first segment trained (the default) where the CPU can; after the runs, as before
    assert [s["denormals_flushed"] for s in segments] == [can_flush, False]
    assert not runtime.denormals_are_flushed()


def test_an_installed_package_has_no_commit(tmp_path, monkeypatch):
    """Outside a git checkout (a wheel in site-packages) commit and dirty are None, not an error."""
    package = tmp_path / "site-packages" / "plastic"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    fake = type("Module", (), {"__file__": str(package / "__init__.py"), "__version__": "9.9"})
    monkeypatch.setattr(provenance, "plastic", fake)
    provenance.code_version.cache_clear()
    try:
        assert provenance.code_version() == {"plastic": "9.9", "commit": None, "dirty": None}
    finally:
        provenance.code_version.cache_clear()
