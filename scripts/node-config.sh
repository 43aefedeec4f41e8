# Sourced by scripts/backup.sh and scripts/restore.sh: the node's configuration as the node
# itself resolves it. Expects: $here (the repository or install root), $bin, $workdir,
# $env_file, $config (may be empty) and a die() function.

# A URL with its password replaced, for messages and the manifest.
redact() { sed -E 's#(://[^:/@]*:)[^@]*@#\1****@#' <<<"$1"; }

# A path from the configuration, relative to the node's working directory.
abs_path() { case "$1" in /*) echo "$1" ;; *) echo "$workdir/${1#./}" ;; esac; }

# NODE_ENVIRONMENT, NODE_DATA_DIR, NODE_PID_FILE, NODE_DATABASE_URL (SQLite paths absolute),
# resolved by `ai-orchestrator-hub config get` in the node's working directory, with the
# node's environment file loaded as its systemd unit loads it.
resolve_node_config() { # WHO (for messages)
  if [ -z "$bin" ]; then
    for candidate in /opt/ai-orchestrator-hub/ai-orchestrator-hub "$here/build/ai-orchestrator-hub" "$(command -v ai-orchestrator-hub || true)"; do
      [ -n "$candidate" ] && [ -x "$candidate" ] && { bin=$candidate; break; }
    done
  fi
  [ -n "$bin" ] && [ -x "$bin" ] || die "cannot find the node binary ai-orchestrator-hub (give --bin PATH)"
  if [ -z "$workdir" ]; then
    if [ -x /opt/ai-orchestrator-hub/ai-orchestrator-hub ] && [ "$(readlink -f "$bin")" = "$(readlink -f /opt/ai-orchestrator-hub/ai-orchestrator-hub)" ]; then
      workdir=/opt/ai-orchestrator-hub
    else
      workdir=$PWD
    fi
  fi
  workdir=$(cd "$workdir" && pwd) || die "no working directory $workdir"
  if [ -z "$env_file" ] && [ -r /etc/ai-orchestrator-hub/env ]; then env_file=/etc/ai-orchestrator-hub/env; fi
  local out
  out=$(cd "$workdir" && {
          if [ -n "$env_file" ]; then set -a; . "$env_file"; set +a; fi
          "$bin" ${config:+--config "$config"} config get environment server.data_dir server.pid_file database.url
        } 2>&1) || die "the node's configuration does not load here ($workdir${config:+, --config $config}):
$out"
  NODE_ENVIRONMENT=$(sed -n 1p <<<"$out")
  NODE_DATA_DIR=$(abs_path "$(sed -n 2p <<<"$out")")
  NODE_PID_FILE=$(abs_path "$(sed -n 3p <<<"$out")")
  NODE_DATABASE_URL=$(sed -n 4p <<<"$out")
  case "$NODE_DATABASE_URL" in
    sqlite://*) NODE_DATABASE_URL="sqlite://$(abs_path "${NODE_DATABASE_URL#sqlite://}")" ;;
  esac
  # The database URL and secrets may come from the environment file: the tools need them too.
  if [ -n "$env_file" ]; then set -a; . "$env_file"; set +a; fi
}

# The pid of the node that holds PID_FILE's lock (it runs), or nothing.
running_node_pid() { # PID_FILE
  [ -f "$1" ] || return 0
  if flock -n "$1" true 2>/dev/null; then return 0; fi
  tr -d ' \n' <"$1"
}
