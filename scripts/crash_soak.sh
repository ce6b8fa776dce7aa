#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Crash soak: kills a journal writer with SIGKILL a thousand times at random moments and checks
# after each kill that every acknowledged record survived, intact (tests/crash/crash_test.cpp).
# Two passes: durability::always (what the issue asks for), then durability::never (many more
# records per cycle, so kills land in the middle of a copy and recovery cuts torn tails).
#
#   scripts/crash_soak.sh                 1000 cycles per pass
#   scripts/crash_soak.sh --cycles 200    any journal_crash_test options, passed to both passes
#   BUILD_DIR=build-x scripts/crash_soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build-crash}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAGENTBUS_BUILD_BENCH=OFF -DAGENTBUS_BUILD_EXAMPLES=OFF \
  -DAGENTBUS_BUILD_TOOLS=OFF -DAGENTBUS_INSTALL=OFF >/dev/null
cmake --build "$build" -j2 --target journal_crash_test >/dev/null
bin="$build/tests/crash/journal_crash_test"
status=0
echo "=== durability::always"
"$bin" --cycles 1000 "$@" | grep -v ': ok, ' || status=1  # failures and the summary only
echo "=== durability::never"
"$bin" --cycles 1000 --durability never "$@" | grep -v ': ok, ' || status=1
exit $status
