"""`plastic info`: versions, CPU and GPUs, and a real check of each suite's environments."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch

from plastic.cli import main
from plastic.errors import MissingDependencyError
from plastic.info import check_suite, gather
from plastic.runtime import cpu_model
from plastic.suites import SUITES


def test_a_working_suite_is_made_and_reset(monkeypatch):
    calls = []
    real = SUITES["minatar"]

    def recording_make_env(game, seed, **kwargs):
        env = real.make_env(game, seed, **kwargs)
        reset = env.reset

        def recording_reset(**reset_kwargs):
            calls.append(("reset", reset_kwargs.get("seed")))
            return reset(**reset_kwargs)

        env.reset = recording_reset
        calls.append(("make", game, seed))
        return env

    monkeypatch.setitem(SUITES, "minatar", dataclasses.replace(real, make_env=recording_make_env))
    check = check_suite("minatar")
    assert check["ok"] and check["game"] == "breakout" and check["seconds"] >= 0
    assert calls == [("make", "breakout", 0), ("reset", 0)]


def test_a_missing_library_is_reported_with_what_to_install_and_the_command_exits_1(monkeypatch, capsys):
    def missing(*_, **__):
        raise MissingDependencyError("MinAtar environments need minatar: pip install -e .[dev]")

    monkeypatch.setitem(SUITES, "minatar", dataclasses.replace(SUITES["minatar"], make_env=missing))
    assert check_suite("minatar") == {"ok": False, "game": "breakout",
                                      "error": "MinAtar environments need minatar: pip install -e .[dev]"}
    assert main(["info", "--suite", "minatar"]) == 1
    out = capsys.readouterr().out
    assert "minatar  NOT usable (breakout): MinAtar environments need minatar: pip install -e .[dev]" in out

    def broken(*_, **__):
        raise AttributeError("'NoneType' object has no attribute 'render'")

    monkeypatch.setitem(SUITES, "minatar", dataclasses.replace(SUITES["minatar"], make_env=broken))
    assert check_suite("minatar")["error"] == "AttributeError: 'NoneType' object has no attribute 'render'"


def test_json_holds_the_machine_and_only_the_suites_asked_for(capsys):
    assert main(["info", "--suite", "minatar", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    name, simd = cpu_model()
    assert (info["cpu"], info["cpu_simd"], info["cores"]) == (name, list(simd), os.cpu_count())
    assert info["torch"] == torch.__version__
    assert len(info["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert list(info["suites"]) == ["minatar"] and info["suites"]["minatar"]["ok"]
    assert set(gather([])["suites"]) == set(SUITES)  # none named: every suite


def test_a_rendering_backend_that_cannot_load_fails_the_dmc_check():
    pytest.importorskip("dm_control")
    env = {**os.environ, "MUJOCO_GL": "no-such-backend"}
    result = subprocess.run([sys.executable, "-m", "plastic.cli", "info", "--suite", "dmc"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "dmc      NOT usable (cartpole-swingup):" in result.stdout
    assert "MUJOCO_GL" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
