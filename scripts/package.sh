#!/usr/bin/env bash
# Builds dist/ai-orchestrator-hub-linux-x64.tar.gz: the node binary, hivectl and settings/
# side by side, as the operations guide unpacks it into /opt/ai-orchestrator-hub.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp build/ai-orchestrator-hub build/hivectl "$stage/"
strip "$stage/ai-orchestrator-hub" "$stage/hivectl"
mkdir -p "$stage/settings"
cp config/settings/*.toml "$stage/settings/"
mkdir -p dist
tar -C "$stage" -czf dist/ai-orchestrator-hub-linux-x64.tar.gz ai-orchestrator-hub hivectl settings
echo "package: dist/ai-orchestrator-hub-linux-x64.tar.gz ($(stat -c%s dist/ai-orchestrator-hub-linux-x64.tar.gz) bytes)"
tar -tzf dist/ai-orchestrator-hub-linux-x64.tar.gz
