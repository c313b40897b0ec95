#!/usr/bin/env bash
# Set up, build, check the layer graph (scripts/check-layers.sh), run every test (CPU tests run;
# GPU tests skip with a message without a GPU), then install and build examples/ against the install.
# In CI (CI=true, set by .ci/run), or with MOEJIT_SANITIZE_TESTS=1, the CPU suite then runs again
# under ASan + UBSan (scripts/sanitize.sh); MOEJIT_SANITIZE_TESTS=0 skips that.
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
default_sanitize=0
if [[ "${CI:-}" == true ]]; then default_sanitize=1; fi
if [[ "${MOEJIT_SANITIZE_TESTS:-$default_sanitize}" == 1 ]]; then
  MOEJIT_CACHE_DIR=$(mktemp -d /tmp/moejit-asan-cache.XXXXXX) bash "$root/scripts/sanitize.sh"
fi
