#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's pkg-config recipe on an installed prefix (`cmake --install build --prefix P`):
#   c++ app.cpp $(pkg-config --cflags MODULE) -o app $(pkg-config --libs MODULE)
# with PKG_CONFIG_PATH=P/share/pkgconfig, then runs the program. Then the same from a copy of
# the prefix elsewhere: MODULE.pc must find its headers from its own place (${pcfiledir}),
# never from the prefix configured at build time. MODULE is agentbus (the core) or
# agentbus-nats (the NATS bridge: agentbus and libnats, which pkg-config must find as well).
#
#   pkg_config.sh PREFIX CXX SOURCE OUTDIR [MODULE]
#
# Without pkg-config it says so and succeeds, unless AGENTBUS_REQUIRE_PKG_CONFIG=1 (CI sets it).
set -euo pipefail
prefix=$1 cxx=$2 source=$3 outdir=$4 module=${5:-agentbus}
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
  includedir=$(PKG_CONFIG_PATH="$p/share/pkgconfig" pkg-config --variable=includedir "$module")
  if [[ $(realpath -m "$includedir") != "$(realpath -m "$p/include")" ]]; then
    echo "consumer (pkg-config): $module.pc in $p names includedir $includedir, not $p/include" >&2
    exit 1
  fi
  # The recipe itself, word for word (the flags are split on purpose).
  # shellcheck disable=SC2046
  "$cxx" "$source" $(PKG_CONFIG_PATH="$p/share/pkgconfig" pkg-config --cflags "$module") -o "$app" \
    $(PKG_CONFIG_PATH="$p/share/pkgconfig" pkg-config --libs "$module")
  "$app"
}

recipe "$prefix" "$outdir/consumer_pkg_config_$module"
# Relocated: a copy of the installed tree, the original out of the way.
moved="$outdir/moved-prefix-$module"
rm -rf "$moved"
cp -a "$prefix" "$moved"
recipe "$moved" "$outdir/consumer_pkg_config_${module}_moved"
rm -rf "$moved"
echo "consumer (pkg-config $module): built and ran from $prefix and from a copy of it"
