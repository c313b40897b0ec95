#!/usr/bin/env bash
# The project's single entry for ALL GPU checks: run it on a machine with a GPU (the `device` tool,
# carrying .deps from scripts/stage-device-deps.sh). It builds without LLVM (warnings are not errors
# there: its GCC differs from CI's, which enforces them), runs every GPU test
# (ctest -L gpu) and every GPU benchmark, and packs logs and results into $OUT/gpu-check.tar.gz
# (the device tool brings back few files) plus $OUT/summary.txt. $OUT defaults to ./gpu-out.
#   bench/gpu-benchmarks.txt         lines "<bench target> [args...]", run as build-gpu/bench/<target>
#   bench/gpu-python-benchmarks.txt  lines "<script.py> [args...]", run with python3
#   --quick  the first call of a GPU session (< 6 minutes on the device's 16 cores): build, every GPU
#            test (4 at a time: most of their time is NVRTC compiling on the CPU), the cuda training
#            backend's step-equality test and a short `moejit train --backend cuda` run, and one short
#            benchmark per kernel family from bench/gpu-benchmarks-quick.txt, each capped at 90 s.
# Each benchmark writes $MOEJIT_BENCH_OUT/<name>.json. Each phase prints its wall time, so the next
# session can size its device call. Exit status: non-zero if any test or benchmark failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
case "${1:-}" in
  --quick) quick=1 ;;
  "") ;;
  *) echo "usage: scripts/gpu-check.sh [--quick]" >&2; exit 2 ;;
esac
started=$SECONDS
phase() { echo "== $1 done at +$((SECONDS - started)) s"; }
final=${OUT:-$root/gpu-out}
out=$(mktemp -d /tmp/gpu-check.XXXXXX)
mkdir -p "$final"
pack() { tar czf "$final/gpu-check.tar.gz" -C "$out" . ; }
trap pack EXIT
# A device call that runs out of time sends TERM: exit through the EXIT trap so the logs still come back.
trap 'exit 143' TERM INT
build="$root/build-gpu"
export MOEJIT_CACHE_DIR=${MOEJIT_CACHE_DIR:-/tmp/moejit-gpu-cache}
export MOEJIT_BENCH_OUT="$out"
# The default corpus staged by scripts/stage-device-deps.sh (the GPU machine has no fortunes package).
[[ -d "$root/.deps/fortunes" && -z "${MOEJIT_FORTUNES_DIR:-}" ]] && export MOEJIT_FORTUNES_DIR="$root/.deps/fortunes"
cd "$root"
exec > >(tee "$final/summary.txt") 2>&1
# The benchmarks' JSON carries it too (bench/bench_util.hpp). The device's copy of the tree has no
# git history: the commit scripts/stage-device-deps.sh recorded.
MOEJIT_COMMIT=${MOEJIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || cat .deps/COMMIT 2>/dev/null || echo unknown)}
export MOEJIT_COMMIT
{
  echo "== $(date -u +%FT%TZ) commit $MOEJIT_COMMIT"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1
} | tee "$out/device.txt"

# NCCL is dlopen'ed (libnccl.so.2): where the system has none, PyTorch's pip wheel may carry one.
if ! ldconfig -p 2>/dev/null | grep -q libnccl.so.2; then
  nccl_lib=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' \
    2>/dev/null || true)
  if [[ -n $nccl_lib && -d $nccl_lib ]]; then export LD_LIBRARY_PATH=$nccl_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEJIT_WITH_LLVM=OFF -DMOEJIT_WERROR=OFF \
  > "$out/configure.log" 2>&1 || { tail -50 "$out/configure.log"; exit 1; }
ninja -C "$build" > "$out/build.log" 2>&1 || { grep -B2 -A20 -m3 "error" "$out/build.log"; exit 1; }
echo "build ok"
phase build

status=0
jobs=1 test_limit=300 train_limit=90
((quick)) && jobs=4 test_limit=150 train_limit=60
ctest --test-dir "$build" -L gpu -j "$jobs" --output-on-failure --timeout "$test_limit" > "$out/ctest-gpu.log" 2>&1 || status=1
tail -n 25 "$out/ctest-gpu.log"
phase "ctest -L gpu"

# The cuda training backend (issue 15): its GPU tests ran in -L gpu above; here they get their own
# log (binaries are cached by then, so this is quick), then `moejit train --backend cuda` end to end
# on a short run of micro-moe (32 steps of 8 x 64 tokens over the repo's docs as a byte corpus): the
# log starts with the memory estimate and ends with val bits/byte and the rung of every kernel. The
# same run eagerly (MOEJIT_NO_GRAPH=1) must log the same losses bit for bit as the graph-replayed
# one; the run on the reference backend is the yardstick.
"$build/tests/runtime/test_runtime" --gtest_filter='CudaStepGpu.*' > "$out/cuda-step.log" 2>&1 \
  || { echo "   CudaStepGpu FAILED"; status=1; }
tail -n 15 "$out/cuda-step.log"
cat docs/*.md README.md > "$out/corpus.txt"
for run in cuda cuda-eager reference; do
  backend=${run%-eager}
  no_graph=; [[ $run == *-eager ]] && no_graph=1
  MOEJIT_NO_GRAPH=$no_graph timeout "$train_limit" "$build/apps/moejit" train --config micro-moe --backend "$backend" \
    --data "$out/corpus.txt" --tokens 16384 --batch 8 --eval-every 16 --out "$out/train-$run" \
    > "$out/train-$run.log" 2>&1 || { echo "   train $run FAILED"; status=1; }
  echo "== train $run"; grep -m2 -e "^memory:" -e "CUDA graph" "$out/train-$run.log"; tail -n 8 "$out/train-$run.log"
done
python3 - "$out/train-cuda/metrics.jsonl" "$out/train-cuda-eager/metrics.jsonl" <<'PY' || status=1
import json, sys
losses = [[(j["step"], j["loss"], j["grad_norm"]) for j in map(json.loads, open(p)) if "loss" in j] for p in sys.argv[1:]]
same = losses[0] == losses[1] and len(losses[0]) > 0
print(f"== graph vs eager: {len(losses[0])} steps, losses and grad norms {'identical' if same else 'DIFFER'}")
sys.exit(0 if same else 1)
PY
phase "train --backend cuda"

run_list() {  # $1 = list file, $2 = command prefix
  [[ -f "$1" ]] || return 0
  local n=0
  while read -r name args; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    n=$((n + 1))
    echo "== bench $name $args"
    local log="$out/bench-$(basename "$name" .py)-$n.log"  # numbered: a bench may be listed twice
    # shellcheck disable=SC2086
    # Line-buffered: a benchmark stopped at its time limit still leaves the lines it printed.
    timeout "$bench_limit" stdbuf -oL -eL $2$name $args > "$log" 2>&1 || { echo "   FAILED"; status=1; }
    tail -n 15 "$log"
  done < "$1"
}
if ((quick)); then
  bench_limit=90
  run_list bench/gpu-benchmarks-quick.txt "$build/bench/"
else
  bench_limit=300
  run_list bench/gpu-benchmarks.txt "$build/bench/"
  run_list bench/gpu-python-benchmarks.txt "python3 "
fi
phase benchmarks
echo "gpu-check: status $status; results in $out"
exit $status
