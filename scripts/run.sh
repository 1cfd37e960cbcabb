#!/usr/bin/env bash
# Set everything up, then run the main job on its embedded default: a small real sweep of
# drq vs plastic on MinAtar Breakout (2 seeds each, 6k steps, replay ratio 1, PLASTIC resetting
# its head every 2k updates so the demo shows resets), then its report
# with IQM and bootstrap CIs. Re-running skips finished runs. Pass a directory to change OUT.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PLASTIC_EXTRAS="${PLASTIC_EXTRAS:-dev,dmc,report,ray}" bash scripts/setup.sh
out="${1:-runs/demo-minatar}"
.venv/bin/plastic sweep minatar --games breakout --presets drq,plastic --seeds 2 \
    --steps 6000 --replay-ratio 1 --out "$out" \
    --set train.learning_starts=1000 --set train.eval_interval=1000 \
    --set train.eval_episodes=5 --set train.eval_envs=5 --set reset.interval=2000
.venv/bin/plastic report "$out" --out "$out/report"
[[ "$out" = /* ]] || out="$root/$out"
echo "report: $out/report/report.md (and report.html)"
