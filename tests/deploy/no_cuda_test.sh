#!/usr/bin/env bash
# The node on a host without CUDA: in a mount namespace of its own, every directory CUDA's
# libraries are found in is hidden under an empty tmpfs (as on a machine where CUDA was never
# installed). The binary must start, say why there is no GPU, and run neural jobs on the CPU.
#   tests/deploy/no_cuda_test.sh BUILT_BINARY     (exit 77: skipped, no CUDA here or no namespaces)
set -u
bin=$(readlink -f "${1:?usage: no_cuda_test.sh BUILT_BINARY}")
backend=$(dirname "$bin")/libhub_neural_cuda.so

[ -f "$backend" ] || { echo "no_cuda_test: this build has no CUDA backend: nothing to hide (skipped)"; exit 77; }
# scripts/test.sh may run every suite in such a namespace already: then the checks run as they are.
if ldd "$backend" | grep -q 'libcublas.* => not found'; then
  echo "no_cuda_test: CUDA's libraries are already hidden here"
  HUB_IN_NO_CUDA_NAMESPACE=1 HUB_CUDA_DIRS=""
fi
if [ "${HUB_IN_NO_CUDA_NAMESPACE:-}" != 1 ]; then
  dirs=$(ldd "$backend" | awk '/=> \// && /cublas|cudart|cublasLt/ {print $3}' | xargs -r -n1 dirname | xargs -r -n1 readlink -f | sort -u)
  [ -n "$dirs" ] || { echo "no_cuda_test: the CUDA backend finds no CUDA library here: nothing to hide (skipped)"; exit 77; }
  if ! unshare --mount true 2>/dev/null; then
    echo "no_cuda_test: cannot make a mount namespace here (needs root or user namespaces; skipped)"; exit 77
  fi
  echo "no_cuda_test: hiding $(echo $dirs) in a mount namespace"
  exec unshare --mount --propagation private env HUB_IN_NO_CUDA_NAMESPACE=1 HUB_CUDA_DIRS="$dirs" bash "$0" "$@"
fi

for d in $HUB_CUDA_DIRS; do mount -t tmpfs -o ro,size=1m no-cuda "$d" || { echo "no_cuda_test: cannot hide $d"; exit 1; }; done

t=$(mktemp -d); pid=""
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$t"' EXIT
failed=0
check() { local name=$1; shift; if out=$("$@" 2>&1); then echo "  ok    $name"; else echo "  FAIL  $name — $(tail -c 300 <<<"$out")"; failed=$((failed + 1)); fi; }

check "CUDA's libraries are gone in here (the backend itself cannot load)" bash -c "ldd '$backend' | grep -q 'libcublas.so.* => not found'"
check "the binary needs no CUDA library (ldd finds everything)" bash -c "! ldd '$bin' | grep -q 'not found'"
check "--version exits 0" "$bin" --version
check "--check passes" bash -c "cd '$t' && '$bin' --check >/dev/null"

while :; do p=$(( (RANDOM % 12000) + 20000 )); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || break; done
u="http://127.0.0.1:$p"
( cd "$t" && exec env HIVE_SERVER__HOST=127.0.0.1 HIVE_SERVER__PORT="$p" HIVE_NEURAL__GPU_ENABLED=true "$bin" >"$t/node.log" 2>&1 ) & pid=$!
for _ in $(seq 1 200); do curl -fs -o /dev/null "$u/readyz" && break; sleep 0.05; done
check "the node starts and is healthy" bash -c "curl -s '$u/health' | jq -e '.data.status != null'"
check "/api/resources says why there is no GPU (the library that is missing)" \
  bash -c "curl -s '$u/api/resources' | jq -e '(.data.gpu | tostring) | test(\"libcublas|could not be loaded\")'"
id=$(curl -s -XPOST "$u/api/tasks" -H 'Content-Type: application/json' -d '{"description":"xor","type":"neural.train",
  "payload":{"model":"xor","layers":[8],"data":[{"a":0,"b":0,"y":0},{"a":0,"b":1,"y":1},{"a":1,"b":0,"y":1},{"a":1,"b":1,"y":0}],
  "target":"y","loss":"mse","epochs":200,"batch_size":4,"learning_rate":0.05}}' | jq -r .data.id)
check "a neural job runs on the CPU" \
  bash -c "curl -s '$u/api/tasks/$id/wait?timeout_ms=60000' | jq -e '.data.status == \"completed\" and (.data.result.backend | startswith(\"cpu\"))'"
kill -TERM "$pid"; wait "$pid"; code=$?; pid=""
check "SIGTERM: exit 0" test "$code" = 0

[ "$failed" -eq 0 ] && echo "no_cuda_test: all passed" || { echo "no_cuda_test: $failed failed"; tail -20 "$t/node.log"; }
exit "$failed"
