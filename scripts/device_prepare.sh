#!/usr/bin/env bash
# Prepare this checkout for a session that is lent a GPU machine (the tool library's `device`):
# that machine has Python 3.12 with torch but nothing else of ours, and cannot download. This
# fetches, here, the wheels of the packages it lacks into .whl/ (versions as in our .venv) and,
# when PLASTIC_AUTHORS_DIR names an export of the authors' code, copies it into .authors/ for the
# side-by-side benchmark. Both folders are git-ignored locally (.git/info/exclude) and travel
# with `carry`. Then, one call:
#   run(command="bash scripts/device_checks.sh", carry=[".whl", ".authors"], timeout_s=600)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-.venv/bin/python}"
for ignored in /.whl/ /.authors/; do
    grep -qxF "$ignored" .git/info/exclude 2>/dev/null || echo "$ignored" >>.git/info/exclude
done

# What the device image lacks (its package list: the tool library's device/KINDS.md).
packages=(gymnasium ale-py minatar farama-notifications omegaconf dotmap)
pins=()
for name in "${packages[@]}"; do
    version="$("$python" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')"
    pins+=("$name${version:+==$version}")
done
rm -rf .whl && mkdir -p .whl
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
echo "wheels: $(cd .whl && ls | tr '\n' ' ')($(du -sh .whl | cut -f1))"

if [[ -n "${PLASTIC_AUTHORS_DIR:-}" ]]; then
    [[ -f "$PLASTIC_AUTHORS_DIR/atari/src/agents/base.py" ]] || {
        echo "PLASTIC_AUTHORS_DIR=$PLASTIC_AUTHORS_DIR is not an export of github.com/dojeon-ai/PLASTIC" >&2
        exit 2
    }
    rm -rf .authors && mkdir -p .authors && cp -r "$PLASTIC_AUTHORS_DIR/atari" .authors/
    echo "authors' code: .authors ($(du -sh .authors | cut -f1))"
else
    echo "PLASTIC_AUTHORS_DIR unset: the device run will time our update only"
fi
echo 'next: run(command="bash scripts/device_checks.sh", carry=[".whl", ".authors"], timeout_s=600)'
