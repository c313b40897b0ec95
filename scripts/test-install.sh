#!/usr/bin/env bash
# Installs a build into a temporary prefix and uses it as a consumer would (never the build tree):
#   - `moejit info` from the installed tree finds the installed templates with no MOEJIT_TEMPLATE_DIR,
#     also after the prefix is moved (the paths are relative to the library and the CLI);
#   - examples/ (a C++ and a C program) build with find_package(moejit), the C one also with
#     pkg-config, and run: each tunes a host kernel, looks its decision up, launches the kernel and
#     checks it against a plain loop.
#   scripts/test-install.sh [BUILD_DIR]   (default: ./build, already built)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
scratch=$(mktemp -d /tmp/moejit-install.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
unset MOEJIT_TEMPLATE_DIR MOEJIT_MODELS_DIR
export MOEJIT_CACHE_DIR=$scratch/cache

cmake --install "$build" --prefix "$scratch/installed" > "$scratch/install.log"
mv "$scratch/installed" "$scratch/prefix"  # relocated: nothing may point at the install-time path
prefix=$scratch/prefix

info=$("$prefix/bin/moejit" info)
if ! grep -qx "templates $prefix/share/moejit/templates" <<< "$info"; then
  echo "test-install: the installed moejit info does not use its installed templates:" >&2
  echo "$info" >&2
  exit 1
fi
echo "test-install: installed moejit info finds $prefix/share/moejit/templates"

cmake -S "$root/examples" -B "$scratch/examples" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" > "$scratch/examples.log" || { cat "$scratch/examples.log"; exit 1; }
ninja -C "$scratch/examples" > "$scratch/examples-build.log" || { cat "$scratch/examples-build.log"; exit 1; }
"$scratch/examples/tuned_swiglu"
"$scratch/examples/tuned_gemm"

# The same C program through pkg-config, as a Makefile or a Python build would link it.
read -r -a pc_flags <<< "$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs moejit)"
cc -std=c11 -Wall -Werror "$root/examples/tuned_gemm.c" -o "$scratch/tuned_gemm_pc" "${pc_flags[@]}" -lm \
  -Wl,-rpath,"$prefix/lib"
"$scratch/tuned_gemm_pc"
echo "test-install: ok"
