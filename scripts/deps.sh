#!/usr/bin/env bash
# Install what sluice needs to build and test, from Debian 12's packages.
# The one list of packages: the quickstart, the tests and CI all call this.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config iproute2
  libevent-dev libssl-dev libyaml-dev libcmocka-dev
  # tests
  python3 python3-pytest python3-yaml memcached socat dnsmasq-base nginx-light
  redis-server nutcracker python3-redis
  prometheus  # promtool checks the /metrics exposition
  # fuzzing: clang only recommends libclang-rt-14-dev, which holds libFuzzer
  clang libclang-rt-14-dev
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
echo "deps: ${#PACKAGES[@]} packages installed"
