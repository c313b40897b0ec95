#!/usr/bin/env bash
# Stages into .deps/ (git-ignored) everything the GPU machine lacks for a build: it has the CUDA
# toolkit, CMake and ninja but no Debian packages. Run here, then pass `carry: [".deps"]` to the
# device call, which runs scripts/gpu-check.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/.deps"
rm -rf "$deps"
mkdir -p "$deps/include"
need() { [[ -e "$1" ]] || { echo "stage-device-deps: $1 missing: run scripts/setup.sh first" >&2; exit 1; }; }
need /usr/include/nlohmann/json.hpp
need /usr/include/CLI/CLI.hpp
need /usr/include/xxhash.h
need /usr/src/googletest/CMakeLists.txt
cp -r /usr/include/nlohmann "$deps/include/"
cp -r /usr/include/CLI "$deps/include/"
cp /usr/include/xxhash.h "$deps/include/"
cp -r /usr/src/googletest "$deps/googletest"
# NCCL's header (its library is dlopen'ed at run time): the device's toolkit may lack it.
for h in nccl.h; do
  if [[ -e /usr/local/cuda/include/$h ]]; then cp /usr/local/cuda/include/$h "$deps/include/"; fi
done
# The training corpus (Debian fortunes): benchmarks and `moejit train` read the same text as here.
if [[ -d /usr/share/games/fortunes ]]; then
  mkdir -p "$deps/fortunes"
  find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.*' -exec cp {} "$deps/fortunes/" \;
fi
# The commit the device will build, for its results (the device copy of the tree has no git history):
# stage again right before each device call.
(cd "$root" && git rev-parse --short HEAD && { git diff --quiet HEAD || echo "(with uncommitted changes)"; }) \
  | paste -sd' ' > "$deps/COMMIT"
echo "staged into $deps ($(du -sh "$deps" | cut -f1)), commit $(cat "$deps/COMMIT")"
