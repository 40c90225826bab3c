#!/usr/bin/env bash
# Runs benchmarks/ops_cpu twice: against LibTorch/OpenBLAS as installed
# (default environment) and tuned as a serious user would run them
# (AVX-512 OpenBLAS kernels, passive OpenMP waits, glibc malloc that keeps
# large blocks instead of returning them to the kernel on every free).
# Writes benchmarks/results/ops_cpu_{default,tuned}.csv.
#   usage: benchmarks/run_ops_cpu.sh [BUILD_DIR=build] [extra ops_cpu args...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${1:-build}
shift || true
bin="$build/benchmarks/ops_cpu"
[ -x "$bin" ] || { echo "run_ops_cpu: $bin not built (cmake --build $build --target ops_cpu)" >&2; exit 1; }
mkdir -p benchmarks/results
echo "== default environment" >&2
"$bin" "$@" | tee benchmarks/results/ops_cpu_default.csv
echo "== tuned peer environment" >&2
OPENBLAS_CORETYPE=SkylakeX OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_THRESHOLD_=33554432 \
MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=268435456 \
  "$bin" "$@" | tee benchmarks/results/ops_cpu_tuned.csv
