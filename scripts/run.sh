#!/usr/bin/env bash
# Sets up (if needed), builds, and starts one node in the foreground on the embedded
# defaults: HTTP on port 3001, SQLite in ./data/hive.db. Extra arguments go to the node
# (e.g. --config my.toml). Stop it with Ctrl-C (it drains and exits 0).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/ai-orchestrator-hub "$@"
