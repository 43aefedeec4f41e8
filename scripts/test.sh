#!/usr/bin/env bash
# Sets up, builds, and runs every test suite with CTest: the Boost.Test suites, the
# end-to-end tests against the real binary and, when ../shared/acceptance is there, the
# operator acceptance scripts. Extra arguments go to ctest (e.g. -R config).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
# The node must start and work on a host without CUDA (the GPU is optional; its backend is
# loaded at run time). Unless this host has a GPU to test with, every suite runs as on such a
# host: CUDA's libraries are hidden under an empty tmpfs in a mount namespace of the tests' own.
if [ -z "${HUB_TESTS_WITH_CUDA:-}" ] && [ ! -e /dev/nvidia0 ] && [ -f libhub_neural_cuda.so ] && unshare --mount true 2>/dev/null; then
  cuda_dirs=$(ldd libhub_neural_cuda.so | awk '/=> \// && /cublas|cudart/ {print $3}' | xargs -r -n1 dirname | xargs -r -n1 readlink -f | sort -u)
  if [ -n "$cuda_dirs" ]; then
    echo "test: every suite runs with CUDA's libraries hidden ($(echo $cuda_dirs)), as on a host without CUDA"
    exec unshare --mount --propagation private bash -c \
      'for d in $0; do mount -t tmpfs -o ro,size=1m no-cuda "$d"; done; exec ctest --output-on-failure --timeout 900 "$@"' \
      "$cuda_dirs" "$@"
  fi
fi
ctest --output-on-failure --timeout 900 "$@"
