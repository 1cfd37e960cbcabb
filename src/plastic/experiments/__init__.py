"""Experiments at scale: sweeps (local processes or a Ray cluster) and reports with rliable CIs.

``plastic sweep`` / ``plastic report`` on the command line; in Python::

    from plastic.experiments import make_spec, make_backend, run_sweep, build_report
    run_sweep(make_spec("minatar", presets="drq,plastic", seeds=3, steps=20_000), make_backend("local"))
    build_report(["sweeps/minatar"])
"""

from plastic.experiments.backends import LocalBackend, RayBackend, make_backend, parse_resources
from plastic.experiments.benchmarks import BENCHMARKS, get_benchmark
from plastic.experiments.report import build_report
from plastic.experiments.sweep import SweepSpec, make_spec, parse_seeds, plan_jobs, run_sweep

__all__ = [
    "BENCHMARKS", "LocalBackend", "RayBackend", "SweepSpec", "build_report", "get_benchmark",
    "make_backend", "make_spec", "parse_resources", "parse_seeds", "plan_jobs", "run_sweep",
]
