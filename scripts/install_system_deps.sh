#!/usr/bin/env bash
# Install the Debian packages for headless MuJoCo rendering (DeepMind Control from pixels):
# Mesa EGL (preferred) and OSMesa (fallback). Idempotent: packages already present are not
# touched, so a second run is instant and needs no network. Without root, prints the command
# to run and exits 0.
set -euo pipefail

packages=(libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri libosmesa6)

missing=()
if command -v dpkg >/dev/null 2>&1; then
    for pkg in "${packages[@]}"; do
        if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
            missing+=("$pkg")
        fi
    done
else
    echo "install_system_deps: not a Debian system (no dpkg); install the equivalents of:" \
        "${packages[*]}" >&2
    exit 0
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "install_system_deps: headless rendering needs these packages; as root run:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
