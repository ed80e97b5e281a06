#!/usr/bin/env bash
# The README's test command: install what is needed, build with warnings as
# errors (SLUICE_WERROR), run every test (unit and integration), build the
# Release configuration (-O3, where GCC finds warnings -O2 does not) and run the
# unit tests there, then build again with ASan+UBSan and run every test there
# too, then run the codec fuzzers for a bounded time.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

jobs=$(nproc)

echo "== RelWithDebInfo build (-Werror) and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== Release build (-O3, -Werror), tests included, and unit tests"
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DSLUICE_WERROR=ON >/dev/null
cmake --build build-release -j"$jobs"
ctest --test-dir build-release --output-on-failure -j"$jobs" -L unit

echo "== debug build with AddressSanitizer + UndefinedBehaviorSanitizer and tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON -DSLUICE_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

echo "== codec fuzzers, ${FUZZ_SECONDS:-20}s each"
FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash scripts/fuzz.sh

echo "== all tests passed"
