#!/usr/bin/env bash
# Set everything up, then lint and run the test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PLASTIC_EXTRAS="${PLASTIC_EXTRAS:-dev,dmc,report,ray}" bash scripts/setup.sh
.venv/bin/ruff check --no-cache src tests benchmarks  # no cache: import sections depend on folders, which the cache does not see
exec .venv/bin/python -m pytest "$@"
