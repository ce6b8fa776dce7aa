#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds and runs the demo: installs missing packages, builds the examples, runs the best one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target example_03_agents >/dev/null
./build/examples/example_03_agents
