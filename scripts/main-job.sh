#!/usr/bin/env bash
# The main job: set up, build, show what this machine offers, then autotune the paper moe-2b MoE
# layer's kernels for two token buckets on the local GPU (or the host CPU backend without one) and
# show the decisions written to the tuning cache. A few minutes on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh"
moejit="$root/build/apps/moejit"
"$moejit" info
"$moejit" tune --model moe-2b --tokens 1024,4096 --dtype f32
"$moejit" cache decisions
