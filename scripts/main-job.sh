#!/usr/bin/env bash
# The main job: set up, build, show what this machine offers, and compile every built-in kernel
# template (every config that survives pruning) for the local GPU, or for sm_90a without one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh"
"$root/build/apps/moejit" info
"$root/build/apps/moejit" compile
