#!/usr/bin/env bash
# Set everything up, then run the main job on its embedded default.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PLASTIC_EXTRAS="${PLASTIC_EXTRAS:-dev,dmc}" bash scripts/setup.sh
exec .venv/bin/plastic demo "$@"
