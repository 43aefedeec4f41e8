#!/usr/bin/env bash
# Installs the node as the systemd service of the operations guide: the ai-orchestrator
# user, /opt/ai-orchestrator-hub (binary + settings/), /var/lib/ai-orchestrator-hub/data,
# /var/log/ai-orchestrator-hub, the unit and the logrotate policy. Run as root. Safe to run
# again: it never overwrites settings or secrets an operator has changed.
#   scripts/install-service.sh [DIR]   DIR holds ai-orchestrator-hub and settings/
#                                      (an unpacked package); default: build/
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "install-service: run as root (sudo)"; exit 1; }
src=${1:-build}
[ -x "$src/ai-orchestrator-hub" ] || { echo "install-service: no binary at $src/ai-orchestrator-hub (build or unpack first)"; exit 1; }
settings_src="$src/settings"
[ -d "$settings_src" ] || settings_src=config/settings

id ai-orchestrator >/dev/null 2>&1 || useradd -r -s /bin/false ai-orchestrator
mkdir -p /opt/ai-orchestrator-hub/settings /var/lib/ai-orchestrator-hub/data /var/log/ai-orchestrator-hub /etc/ai-orchestrator-hub
install -m 0755 "$src/ai-orchestrator-hub" /opt/ai-orchestrator-hub/ai-orchestrator-hub
[ -x "$src/hivectl" ] && install -m 0755 "$src/hivectl" /opt/ai-orchestrator-hub/hivectl
# The CUDA backend, opened only where CUDA's libraries are installed.
[ -f "$src/libhub_neural_cuda.so" ] && install -m 0644 "$src/libhub_neural_cuda.so" /opt/ai-orchestrator-hub/libhub_neural_cuda.so
for f in "$settings_src"/*.toml; do
  target=/opt/ai-orchestrator-hub/settings/$(basename "$f")
  [ -e "$target" ] && [ "$(basename "$f")" != default.toml ] && continue
  install -m 0644 "$f" "$target"
done
chown -R ai-orchestrator:ai-orchestrator /opt/ai-orchestrator-hub /var/lib/ai-orchestrator-hub /var/log/ai-orchestrator-hub
chmod 755 /opt/ai-orchestrator-hub
# Secrets live outside the unit and the settings: a fresh random JWT secret on first install.
if [ ! -e /etc/ai-orchestrator-hub/env ]; then
  umask 077
  printf 'JWT_SECRET=%s\n' "$(head -c 48 /dev/urandom | base64 | tr -d '\n')" >/etc/ai-orchestrator-hub/env
fi
install -m 0644 deploy/systemd/ai-orchestrator-hub.service /etc/systemd/system/ai-orchestrator-hub.service
install -m 0644 deploy/logrotate/ai-orchestrator-hub /etc/logrotate.d/ai-orchestrator-hub
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "install-service: installed; start with: sudo systemctl enable --now ai-orchestrator-hub"
else
  echo "install-service: installed (systemd is not running here; the unit is in /etc/systemd/system)"
fi
