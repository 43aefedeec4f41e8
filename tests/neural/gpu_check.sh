#!/usr/bin/env bash
# The GPU checks of the neural engine, as one script for a machine with an NVIDIA GPU:
# the device, the CPU/CUDA agreement test, and the numeric benchmark on both backends.
#   tests/neural/gpu_check.sh [BUILD_DIR]     (default: build; build it first: scripts/build.sh)
# Prints what it ran; exits non-zero when a check fails (a missing GPU is a failure here).
set -u
B=${1:-build}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "gpu_check: no GPU visible"; exit 1; }
failed=0
out=$("$B/tests/mlp_test" --run_test=cpu_and_cuda_agree_within_1e_4 --log_level=message 2>&1)
echo "$out" | grep -E 'CPU vs|SKIPPED|error|No errors'
echo "$out" | grep -q 'SKIPPED' && failed=1
echo "$out" | grep -q 'No errors detected' || failed=1
for backend in cpu cuda; do "$B/neural_bench" mlp_train "$backend" "${SECONDS_PER_RUN:-10}"; done
exit $failed
