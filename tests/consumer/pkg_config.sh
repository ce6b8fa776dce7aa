#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's pkg-config recipe on an installed prefix (`cmake --install build --prefix P`):
#   c++ app.cpp $(pkg-config --cflags agentbus) -o app $(pkg-config --libs agentbus)
# with PKG_CONFIG_PATH=P/share/pkgconfig, then runs the program. Then the same from a copy of
# the prefix elsewhere: agentbus.pc must find its headers from its own place (${pcfiledir}),
# never from the prefix configured at build time.
#
#   pkg_config.sh PREFIX CXX SOURCE OUTDIR
#
# Without pkg-config it says so and succeeds, unless AGENTBUS_REQUIRE_PKG_CONFIG=1 (CI sets it).
set -euo pipefail
prefix=$1 cxx=$2 source=$3 outdir=$4
if ! command -v pkg-config >/dev/null; then
  if [[ ${AGENTBUS_REQUIRE_PKG_CONFIG:-0} == 1 ]]; then
    echo "consumer (pkg-config): pkg-config is not installed (AGENTBUS_REQUIRE_PKG_CONFIG=1)" >&2
    exit 1
  fi
  echo "consumer (pkg-config): SKIPPED, pkg-config is not installed (Debian: pkgconf)"
  exit 0
fi
mkdir -p "$outdir"

recipe() {  # $1: installed prefix, $2: program to build
  local p=$1 app=$2 includedir
  includedir=$(PKG_CONFIG_PATH="$p/share/pkgconfig" pkg-config --variable=includedir agentbus)
  if [[ $(realpath -m "$includedir") != "$(realpath -m "$p/include")" ]]; then
    echo "consumer (pkg-config): agentbus.pc in $p names includedir $includedir, not $p/include" >&2
    exit 1
  fi
  # The recipe itself, word for word (the flags are split on purpose).
  # shellcheck disable=SC2046
  "$cxx" "$source" $(PKG_CONFIG_PATH="$p/share/pkgconfig" pkg-config --cflags agentbus) -o "$app" \
    $(PKG_CONFIG_PATH="$p/share/pkgconfig" pkg-config --libs agentbus)
  "$app"
}

recipe "$prefix" "$outdir/consumer_pkg_config"
# Relocated: a copy of the installed tree, the original out of the way.
moved="$outdir/moved-prefix"
rm -rf "$moved"
cp -a "$prefix" "$moved"
recipe "$moved" "$outdir/consumer_pkg_config_moved"
rm -rf "$moved"
echo "consumer (pkg-config): built and ran from $prefix and from a copy of it"
