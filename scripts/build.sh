#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), configures and builds into ./build.
# Warnings are errors for project code (MOEJIT_WERROR=ON) unless MOEJIT_WERROR=OFF is exported.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOEJIT_WERROR="${MOEJIT_WERROR:-ON}" >/dev/null
ninja -C build -j "$(nproc)"
