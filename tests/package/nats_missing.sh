#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The installed package where the NATS C client cannot be found: pkg-config searches only an
# empty directory (PKG_CONFIG_PATH and PKG_CONFIG_LIBDIR), then there is no working pkg-config.
# The find_package consumer (tests/package) is configured against the installed PREFIX:
#   - without components: configures (the core needs nothing of NATS);
#   - COMPONENTS nats: the configure fails, and says what is missing and what to install;
#   - OPTIONAL_COMPONENTS nats: configures, agentbus_nats_FOUND false, no agentbus::nats;
#   - COMPONENTS nats where pkg-config does not run: fails, saying that pkg-config is missing.
#
#   nats_missing.sh CMAKE CXX PREFIX PROJECT_DIR WORKDIR
set -euo pipefail
cmake=$1 cxx=$2 prefix=$3 project=$4 work=$5
rm -rf "$work"
mkdir -p "$work/empty-pkgconfig"
fail() {
  echo "nats missing: $*" >&2
  exit 1
}
# configure NAME ARGS...: configures tests/package into WORKDIR/NAME with pkg-config searching
# the empty directory only; its output in WORKDIR/NAME.log; returns cmake's exit status.
configure() {
  local name=$1
  shift
  env -u CMAKE_PREFIX_PATH -u PKG_CONFIG PKG_CONFIG_PATH="$work/empty-pkgconfig" PKG_CONFIG_LIBDIR="$work/empty-pkgconfig" \
    "$cmake" -S "$project" -B "$work/$name" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx" "$@" \
    >"$work/$name.log" 2>&1
}
# expect_in NAME TEXT: the configure output of NAME contains TEXT (on one line; cmake wraps
# long messages, so the log is read with its line breaks and indentation folded to spaces).
expect_in() {
  local folded
  folded=$(tr '\n' ' ' <"$work/$1.log" | tr -s ' ')
  [[ $folded == *"$2"* ]] || fail "$1: the configure output does not say \"$2\":"$'\n'"$(cat "$work/$1.log")"
}

configure plain -DAGENTBUS_PACKAGE_NATS=OFF ||
  fail "find_package(agentbus) without components fails when libnats is missing:"$'\n'"$(cat "$work/plain.log")"

if configure required -DAGENTBUS_PACKAGE_NATS=REQUIRED; then
  fail "find_package(agentbus COMPONENTS nats) succeeds although pkg-config finds no libnats:"$'\n'"$(cat "$work/required.log")"
fi
expect_in required "the component nats (the target agentbus::nats) needs the NATS C client (libnats)"
if command -v pkg-config >/dev/null; then
  expect_in required "does not find libnats"
else
  expect_in required "pkg-config is not installed"
fi
expect_in required "apt-get install libnats-dev pkg-config"

configure optional -DAGENTBUS_PACKAGE_NATS=OPTIONAL -DAGENTBUS_PACKAGE_EXPECT_NATS=OFF ||
  fail "OPTIONAL_COMPONENTS nats fails (or agentbus_nats_FOUND is wrong) when libnats is missing:"$'\n'"$(cat "$work/optional.log")"
expect_in optional "agentbus_nats_FOUND=FALSE"
expect_in optional "needs the NATS C client (libnats)"

# No pkg-config: the one named does not run, so find_package(PkgConfig) does not find it.
if configure no_pkg_config -DAGENTBUS_PACKAGE_NATS=REQUIRED -DPKG_CONFIG_EXECUTABLE="$work/no-such-pkg-config"; then
  fail "COMPONENTS nats succeeds without pkg-config:"$'\n'"$(cat "$work/no_pkg_config.log")"
fi
expect_in no_pkg_config "pkg-config is not installed"
expect_in no_pkg_config "apt-get install libnats-dev pkg-config"
echo "nats missing: the core configures; COMPONENTS nats fails naming libnats-dev and pkg-config; OPTIONAL_COMPONENTS nats reports it not found"
