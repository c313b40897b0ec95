#!/usr/bin/env bash
# Installs every Debian package moejit's build, tests and benchmarks need. Idempotent; run as root.
# The CUDA toolkit is not a Debian package here: it is expected at $CUDA_HOME or /usr/local/cuda.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  nlohmann-json3-dev libgtest-dev libgmock-dev googletest libcli11-dev
  libxxhash-dev
  llvm-16-dev libclang-cpp16-dev libclang-16-dev clang-16 libomp-16-dev
  libopenmpi-dev openmpi-bin
  libopenblas-dev
  fortunes-min fortunes
  clang-format
  python3 python3-matplotlib
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run this script as root (or: sudo $0) to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all Debian packages present"
fi

cuda_home=${CUDA_HOME:-/usr/local/cuda}
if [[ ! -x "$cuda_home/bin/nvcc" && ! -f "$cuda_home/include/nvrtc.h" ]]; then
  echo "setup: no CUDA toolkit at $cuda_home (set CUDA_HOME): NVRTC is required to build moejit" >&2
  exit 1
fi
echo "setup: CUDA toolkit at $cuda_home"
