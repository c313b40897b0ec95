#!/usr/bin/env bash
# Set up, build, check the layer graph (scripts/check-layers.sh), run every test (CPU tests run;
# GPU tests skip with a message without a GPU), then install and build examples/ against the install.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh"
# Layers depend only downward (docs/architecture.md): CMake targets and #includes.
bash "$root/scripts/check-layers.sh"
# A private kernel cache, so that a user's cache neither helps nor hurts the run.
export MOEJIT_CACHE_DIR=${MOEJIT_CACHE_DIR:-$(mktemp -d /tmp/moejit-test-cache.XXXXXX)}
ctest --test-dir "$root/build" --output-on-failure -j "$(nproc)" --timeout 600
# The installed package, used by examples/ as a consumer would (docs/api.md).
bash "$root/scripts/test-install.sh" "$root/build"
