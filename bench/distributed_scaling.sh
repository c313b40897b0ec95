#!/usr/bin/env bash
# Host scaling of `moejit train` over MPI ranks: bench_distributed under mpirun with 1, 2 and 4 ranks,
# data parallel and expert parallel (P = 2), one trainer thread per rank. Results: one JSON per run in
# $MOEJIT_BENCH_OUT (default bench/results/distributed/), the printed lines on stdout. Every multi-rank
# run twice, back to back: the all-reduce overlapped with the backward (default), then after it.
#   bench/distributed_scaling.sh [build dir=build] [steps=8] [config=tiny-moe-r20]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
steps=${2:-8}
config=${3:-tiny-moe-r20}
export MOEJIT_BENCH_OUT=${MOEJIT_BENCH_OUT:-$root/bench/results/distributed}
# --oversubscribe: more ranks than cores is allowed (and on a 2-core machine, needed for 4 ranks).
mpirun=(mpirun --oversubscribe --bind-to none)
if [[ $(id -u) -eq 0 ]]; then mpirun+=(--allow-run-as-root); fi
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for run in "1 1" "2 1" "2 2" "4 1" "4 2"; do
  read -r ranks ep <<<"$run"
  for overlap in 1 0; do
    if [[ $ranks -eq 1 && $overlap -eq 0 ]]; then continue; fi
    "${mpirun[@]}" -np "$ranks" "$build/bench/bench_distributed" "$steps" "$config" host "$ep" 1 "$overlap" |
      grep -v '^results:'
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
