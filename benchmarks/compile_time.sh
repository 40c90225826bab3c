#!/usr/bin/env bash
# Times the compile of benchmarks/compile_probe.cpp (polymath.hpp + 20 ops)
# at -O2, three times, and prints the median. Target: < 15 s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cxx=${CXX:-g++}
flags=(-std=c++20 -O2 -march=native -Iinclude -I/usr/include/eigen3 -DPOLYMATH_WITH_TBB=1)
times=()
for i in 1 2 3; do
  s=$(date +%s.%N)
  "$cxx" "${flags[@]}" -c benchmarks/compile_probe.cpp -o /tmp/polymath_compile_probe.o
  e=$(date +%s.%N)
  times+=("$(echo "$e - $s" | bc)")
done
med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
printf 'compile_probe.cpp (polymath.hpp + 20 ops, %s -O2): median %.1f s (runs: %s)\n' "$cxx" "$med" "${times[*]}"
