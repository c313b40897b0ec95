#!/usr/bin/env bash
# Fails on an upward dependency between moejit's layers (see docs/architecture.md): configures a
# scratch build with `cmake --graphviz` (tests and benchmarks off: they sit above everything) and
# checks the target graph and every quoted #include with scripts/check_layers.py, after the checker
# has proved on planted violations that it catches them.
#   scripts/check-layers.sh            check (extra cmake -D options may follow, e.g. -DMOEJIT_WITH_LLVM=OFF)
#   scripts/check-layers.sh --mermaid  print the layer graph for docs/architecture.md
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=check
if [[ "${1:-}" == "--mermaid" ]]; then
  mode=mermaid
  shift
fi
scratch=$(mktemp -d /tmp/moejit-layers.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
cmake -S "$root" -B "$scratch" -G Ninja -DMOEJIT_BUILD_TESTS=OFF -DMOEJIT_BUILD_BENCH=OFF "$@" \
  --graphviz="$scratch/graph.dot" > "$scratch/configure.log" 2>&1 || { cat "$scratch/configure.log"; exit 1; }
if [[ "$mode" == mermaid ]]; then
  python3 "$root/scripts/check_layers.py" --graph "$scratch/graph.dot" --mermaid
  exit 0
fi
python3 "$root/scripts/check_layers.py" --self-test
python3 "$root/scripts/check_layers.py" --root "$root" --graph "$scratch/graph.dot"
