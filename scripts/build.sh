#!/usr/bin/env bash
# Configures (once) and builds everything into build/ with Ninja (and ccache when present).
# Extra arguments go to the first cmake configure, e.g. -DHUB_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
fi
ninja -C build -j "${HUB_BUILD_JOBS:-$(nproc)}"
