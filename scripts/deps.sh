#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages agentbus's build, tests and benchmarks use, when missing.
# Needs root (or sudo) only when something is missing.
set -euo pipefail
required=(g++ cmake make libfmt-dev catch2)
# benchmark peers (Boost, moodycamel, atomic_queue, SQLite), instruction counts, clang for the
# libFuzzer harness, doxygen for the API reference (target agentbus_docs), and python3 for the
# journal tool test's JSON checks (skipped without it unless AGENTBUS_REQUIRE_PYTHON=1)
optional=(libboost-dev libconcurrentqueue-dev libatomic-queue-dev libsqlite3-dev valgrind clang libclang-rt-14-dev
  doxygen python3)
# the NATS bridge's tests and example (CMake target agentbus::nats), with signing (libcrypto) and compression (zstd)
optional+=(nats-server libnats-dev libssl-dev libzstd-dev openssl)
missing=()
# --required: only what building and running the unit tests needs (scripts/test.sh --unit).
wanted=("${required[@]}")
[[ ${1:-} == --required ]] || wanted+=("${optional[@]}")
for p in "${wanted[@]}" ${AGENTBUS_EXTRA_PACKAGES:-}; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
