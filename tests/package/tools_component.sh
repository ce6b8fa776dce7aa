#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The tools' install component: `cmake --install BUILD --component agentbus_tools --prefix P`
# installs agentbus-journal into P/bin and nothing else (no headers, no CMake package, no .pc
# file), and the installed program runs there: --help, and stats and verify on a journal.
#
#   tools_component.sh CMAKE BUILD_DIR WORKDIR MAKE_JOURNAL
set -euo pipefail
cmake=$1 build=$2 work=$3 make_journal=$4
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
"$cmake" --install "$build" --component agentbus_tools --prefix "$prefix" >"$work/install.log"
tool=$prefix/bin/agentbus-journal
fail() {
  echo "tools component: $*" >&2
  exit 1
}
[[ -x $tool ]] || fail "no executable $tool after installing the component (log: $(cat "$work/install.log"))"
others=$(cd "$prefix" && find . -type f ! -path ./bin/agentbus-journal | sort)
[[ -z $others ]] || fail "the component installed more than the tool: $others"
"$tool" --help | grep -q "agentbus-journal stats DIR" || fail "$tool --help does not print the usage"
"$make_journal" "$work/journal" --records 20 >/dev/null
stats=$("$tool" stats "$work/journal") || fail "stats exited $?"
grep -q "^records      20$" <<<"$stats" || fail "stats does not count 20 records: $stats"
"$tool" verify "$work/journal" | grep -q "^result       OK$" || fail "verify does not say OK"
echo "tools component: $tool installed alone, runs (--help, stats, verify)"
