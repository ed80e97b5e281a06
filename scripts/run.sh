#!/usr/bin/env bash
# The README's run command: install, build, check the shipped config and run
# sluice on it. (The data path that carries traffic lands with issue 3; until
# then this shows the effective config and the process starting and stopping.)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
./build/sluice -t -c config/sluice.yaml
./build/sluice -c config/sluice.yaml &
pid=$!
sleep 1
kill -TERM "$pid"
wait "$pid"
