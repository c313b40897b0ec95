#!/usr/bin/env bash
# The CPU test suite under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/), as CI runs it
# after the normal suite (scripts/test.sh). Any ASan or UBSan report fails the test it happens in:
# UBSan halts on the first error, ASan always does, LeakSanitizer reports leaks at exit.
#   - LLVM's own allocations that live until exit are suppressed, each entry justified, in
#     scripts/sanitizers/lsan.supp; nothing of moejit's is.
#   - handle_segv=0 only for the test that faults on purpose (tests/CMakeLists.txt, FAULTS).
#   - -O1 -g1 (line tables: enough for symbolised reports) halves the compile time of -O2 -g under
#     ASan + UBSan; benchmarks are not built; tests labelled `sanitize_skip` are left out (NVRTC
#     sweeps, the 200-step convergence run: reasons beside each in tests/*/CMakeLists.txt), so that
#     the whole of .ci/run stays well under 30 minutes on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${MOEJIT_SANITIZE_BUILD:-build-asan}
# Exported before the build too: gtest_discover_tests runs each test binary while building.
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$root/scripts/sanitizers/lsan.supp:print_suppressions=0"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DMOEJIT_WERROR="${MOEJIT_WERROR:-ON}" -DMOEJIT_SANITIZE=ON \
  -DMOEJIT_BUILD_BENCH=OFF >/dev/null
ninja -C "$build" -j "$(nproc)"
export MOEJIT_CACHE_DIR=${MOEJIT_CACHE_DIR:-$(mktemp -d /tmp/moejit-asan-cache.XXXXXX)}
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout 900 -LE "gpu|sanitize_skip"
