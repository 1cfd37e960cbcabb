#!/usr/bin/env bash
# Create .venv and install plastic with the extras named in $PLASTIC_EXTRAS (default: dev).
# Idempotent: a second run only checks that everything is in place.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
extras="${PLASTIC_EXTRAS:-dev}"
# Headless-GL system libraries for DeepMind Control rendering (installs only as root, only if missing).
if [[ ",$extras," == *",dmc,"* && -f scripts/install_system_deps.sh ]]; then
    bash scripts/install_system_deps.sh
fi
python_bin="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    "$python_bin" -m venv .venv
fi
stamp=".venv/.plastic-installed-$(echo "$extras" | tr ',' '-')"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    # The CPU build of torch that lies on this machine's disk; a GPU machine may bring its own CUDA
    # build first (any torch>=2.2 already installed is kept).
    if ! .venv/bin/python -c "import torch" 2>/dev/null; then
        .venv/bin/python -m pip install --quiet "torch==${PLASTIC_TORCH_VERSION:-2.13.0}"
    fi
    .venv/bin/python -m pip install --quiet -e ".[${extras}]"
    touch "$stamp"
fi
