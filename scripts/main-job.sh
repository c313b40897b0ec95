#!/usr/bin/env bash
# The main job: set up, build, show what this machine offers, then
#   1. autotune every kernel of a training step of the default small MoE config (tiny-moe-r20,
#      r_a ~20%) on the host backend for its training micro-batch (8 sequences x 256 tokens): the
#      MoE layer's kernels and the step's dense kernels (matmuls, attention, SwiGLU; 39 in all),
#      each GEMM with a local search of at most 24 configs; and show the decisions written;
#   2. train that config for a few minutes on the embedded corpus (Debian's fortunes) on the host
#      backend with the tuned kernels, printing the falling validation loss in bits per byte and, at
#      the end, which tuning-cache rung served each kernel ("all 39 kernels tuned").
# About 8 minutes on 2 cores after the build (6.5 of them tuning).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh"
moejit="$root/build/apps/moejit"
config=tiny-moe-r20
"$moejit" info
"$moejit" tune --model "$config" --backend host --tokens 2048 --exhaustive-limit 16 --max-candidates 24
"$moejit" cache decisions
# A fresh run each time: train refuses to mix a new run into a folder holding another run's checkpoints.
rm -rf "$root/runs/main-job"
"$moejit" train --config "$config" --backend host --tokens 204800 --eval-every 20 --out "$root/runs/main-job"
