#!/usr/bin/env bash
# Builds dist/ai-orchestrator-hub-linux-x64.tar.gz: the node binary, hivectl, settings/ and
# (when built) the CUDA backend libhub_neural_cuda.so side by side, as the operations guide
# unpacks it into /opt/ai-orchestrator-hub. The binary starts without CUDA; the backend is
# opened only on hosts where CUDA's libraries are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp build/ai-orchestrator-hub build/hivectl "$stage/"
strip "$stage/ai-orchestrator-hub" "$stage/hivectl"
files=(ai-orchestrator-hub hivectl settings)
if [ -f build/libhub_neural_cuda.so ]; then
  cp build/libhub_neural_cuda.so "$stage/"
  strip --strip-unneeded "$stage/libhub_neural_cuda.so"
  files+=(libhub_neural_cuda.so)
fi
mkdir -p "$stage/settings"
cp config/settings/*.toml "$stage/settings/"
mkdir -p dist
tar -C "$stage" -czf dist/ai-orchestrator-hub-linux-x64.tar.gz "${files[@]}"
echo "package: dist/ai-orchestrator-hub-linux-x64.tar.gz ($(stat -c%s dist/ai-orchestrator-hub-linux-x64.tar.gz) bytes)"
tar -tzf dist/ai-orchestrator-hub-linux-x64.tar.gz
