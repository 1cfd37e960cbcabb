"""A script of the repository (``benchmarks/...``) imported as a module by its tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str) -> ModuleType:
    """``ROOT/relative`` as a module, as ``python relative`` would run it: its folder on
    ``sys.path`` (the benchmarks' ``from harness import ...``), and registered in ``sys.modules``
    under its file's stem (a dataclass looks its module up there)."""
    path = ROOT / relative
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
