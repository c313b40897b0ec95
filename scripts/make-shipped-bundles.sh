#!/usr/bin/env bash
# Tunes the MoE layers of the configs moejit ships bundles for on this GPU and exports the decisions
# as a shipped bundle, tuning_cache/bundles/NAME.json (the lookup's `shipped` rung,
# tuning_cache/bundles/README.md). Issue 21. Run on a lent GPU after scripts/gpu-check.sh has built
# build-gpu; every model gets the same time budget (moejit tune --max-seconds), so the whole run
# fits one device call: size SECONDS x models + about 30 s of compiling.
#   scripts/make-shipped-bundles.sh NAME [SECONDS per model=60] [TOKENS=all] [CONFIG...]
# The bundle lands in $OUT when set (the device call brings it back), else in tuning_cache/bundles/.
# Commit it there; tests/tuning_cache/shipped_bundles_test.cpp then checks it against the templates.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
name=${1:?usage: scripts/make-shipped-bundles.sh NAME [SECONDS] [TOKENS] [CONFIG...]}
seconds=${2:-60}
tokens=${3:-all}
shift $(($# < 3 ? $# : 3))
configs=("$@")
((${#configs[@]})) || configs=(moe-2b moe-7b qwen3-30b-a3b deepseekmoe-16b olmoe-1b-7b)
moejit=${MOEJIT_BIN:-$root/build-gpu/apps/moejit}
backend=${MOEJIT_TUNE_BACKEND:-cuda}  # host: a dry run of this script on a CPU
[[ -x $moejit ]] || { echo "no $moejit: build first (scripts/gpu-check.sh)" >&2; exit 1; }
# A tuning cache of its own: the bundle holds exactly what this run measured.
export MOEJIT_CACHE_DIR=${MOEJIT_CACHE_DIR:-$(mktemp -d /tmp/moejit-shipped.XXXXXX)}
dest=${OUT:-$root/tuning_cache/bundles}
mkdir -p "$dest"
for config in "${configs[@]}"; do
  echo "== $config: up to $seconds s"
  "$moejit" tune --backend "$backend" --model "$config" --tokens "$tokens" --max-seconds "$seconds" --isolate none \
    2>&1 | tail -n 4
done
"$moejit" cache export -o "$dest/$name.json"
"$moejit" cache decisions | tail -n 3
echo "bundle: $dest/$name.json"
