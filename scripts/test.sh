#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite: installs missing packages, builds everything, runs ctest
# (unit tests, stress tests, examples, header checks, single header, consumer projects).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2
