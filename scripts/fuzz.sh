#!/usr/bin/env bash
# Build the codec fuzzers (libFuzzer) in build-fuzz and run each for a bounded time.
#
# Needs Debian 12 packages: clang (clang-14) and libclang-rt-14-dev. The latter
# holds libclang_rt.fuzzer and the sanitizer runtimes; clang only recommends it
# (through libclang-common-14-dev), so an install with --no-install-recommends
# lacks it and -fsanitize=fuzzer fails to link. libfuzzer-14-dev is not needed.
#
#   FUZZ_SECONDS=20   seconds per target (-max_total_time)
#   FUZZ_JOBS         build parallelism (default: nproc)
# Corpora persist in build-fuzz/corpus/<target>; crash inputs land in build-fuzz/crashes.
# Exits non-zero if a target crashes, leaks, times out or fails to build.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
jobs=${FUZZ_JOBS:-$(nproc)}
targets=(fuzz_line fuzz_length fuzz_reframe fuzz_resp)

CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_FUZZ=ON \
  -DSLUICE_WERROR=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target "${targets[@]}"

mkdir -p build-fuzz/crashes
status=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  echo "== $t for ${seconds}s"
  if ! "build-fuzz/tests/fuzz/$t" -max_total_time="$seconds" -print_final_stats=1 \
      -artifact_prefix="build-fuzz/crashes/$t-" "build-fuzz/corpus/$t" \
      >"build-fuzz/$t.log" 2>&1; then
    echo "$t FAILED; see build-fuzz/$t.log and build-fuzz/crashes/"
    tail -n 40 "build-fuzz/$t.log"
    status=1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' \
    "build-fuzz/$t.log" || true
done
exit $status
