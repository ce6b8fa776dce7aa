#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The test suite.
#
#   bash scripts/test.sh          the whole suite: installs missing packages (scripts/deps.sh),
#                                 builds everything in build/, runs every ctest test (unit and
#                                 stress tests, examples, header checks, single header, consumer
#                                 projects, tools, crash tests)
#   bash scripts/test.sh --unit   the quick path for contributors: required packages only, the
#                                 unit tests (ctest label unit) built in build-unit/, without
#                                 benchmarks, tools and examples
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '3,11s/^# \{0,1\}//p' "$0"; }

case ${1:-} in
  "")
    bash scripts/deps.sh
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build build -j2
    ctest --test-dir build --output-on-failure -j2
    ;;
  --unit)
    bash scripts/deps.sh --required
    cmake -S . -B build-unit -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DAGENTBUS_BUILD_BENCH=OFF -DAGENTBUS_BUILD_TOOLS=OFF -DAGENTBUS_BUILD_EXAMPLES=OFF
    # What the unit-labelled tests run, and the header-alone check (a build, no test to run);
    # not the stress or crash tests.
    cmake --build build-unit -j2 --target agentbus_unit_tests agentbus_header_alone agentbus_odr \
      agentbus_single_header_example
    ctest --test-dir build-unit --output-on-failure -j2 -L unit --no-tests=error
    ;;
  -h | --help)
    usage
    ;;
  *)
    echo "test.sh: unknown argument '$1'" >&2
    usage >&2
    exit 2
    ;;
esac
