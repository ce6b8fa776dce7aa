#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The compile-fail suite: every program in tests/compile_fail/ must not compile, and the first
# error the compiler prints must be the static_assert its second line names
# (`// Must not compile. expect: <text>`): the helpful message first, not after a cascade.
#
#   scripts/compile_fail.sh [--cxx COMPILER] [FILE...]   (default: every file, with c++)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cxx=c++
files=()
while (($#)); do
  case $1 in
    --cxx) cxx=$2; shift 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
((${#files[@]})) || files=("$root"/tests/compile_fail/*.cpp)
command -v "$cxx" >/dev/null || { echo "compile_fail: $cxx not found" >&2; exit 1; }

# Most programs begin with the umbrella header: parsing it is most of their compile time, so it
# is precompiled once (GCC: a .gch found through an include directory searched first; clang:
# -include-pch) and used by the programs whose first #include it is. The others, and every
# program when precompiling fails or would not pay (fewer than 3 such programs: the mutation
# check's single ones), are compiled as they are.
pch_dir=$(mktemp -d "${TMPDIR:-/tmp}/agentbus-compile-fail.XXXXXX")
trap 'rm -rf "$pch_dir"' EXIT
umbrella='#include <agentbus/agentbus.hpp>'
pch_flags=()
first_include() { grep -m1 '^#include' "$1" || true; }
wants_pch=0
for f in "${files[@]}"; do [[ $(first_include "$f") == "$umbrella" ]] && wants_pch=$((wants_pch + 1)); done
if ((wants_pch >= 3)); then
  if "$cxx" --version 2>/dev/null | grep -qi clang; then
    "$cxx" -std=c++20 -x c++-header -I"$root/include" "$root/include/agentbus/agentbus.hpp" -o "$pch_dir/agentbus.pch" \
      2>/dev/null && pch_flags=(-include-pch "$pch_dir/agentbus.pch")
  else
    mkdir -p "$pch_dir/agentbus"
    "$cxx" -std=c++20 -x c++-header -I"$root/include" "$root/include/agentbus/agentbus.hpp" \
      -o "$pch_dir/agentbus/agentbus.hpp.gch" 2>/dev/null && pch_flags=(-I"$pch_dir" -Winvalid-pch)
  fi
  ((${#pch_flags[@]})) || echo "compile-fail: could not precompile agentbus.hpp; compiling every program from source"
fi

passed=0 failed=0
for f in "${files[@]}"; do
  name=$(basename "$f" .cpp)
  expect=$(sed -n '2s/^\/\/ Must not compile\. expect: //p' "$f")
  if [[ -z $expect ]]; then
    echo "FAIL $name: no '// Must not compile. expect: ...' on line 2"; failed=$((failed + 1)); continue
  fi
  flags=()
  [[ $(first_include "$f") == "$umbrella" ]] && flags=("${pch_flags[@]}")
  if out=$("$cxx" -std=c++20 -fsyntax-only "${flags[@]}" -I"$root/include" "$f" 2>&1); then
    echo "FAIL $name: compiled, but must not"; failed=$((failed + 1)); continue
  fi
  first=$(grep -m1 -E "error:" <<<"$out" || true)
  errors=$(grep -c -E "error:" <<<"$out" || true)
  if [[ $first != *"$expect"* ]]; then
    echo "FAIL $name: the first error is not the expected one"
    echo "  expected: $expect"
    echo "  first:    $first"
    failed=$((failed + 1)); continue
  fi
  echo "ok   $name ($errors error line(s))"
  passed=$((passed + 1))
done
echo "compile-fail ($cxx): $passed passed, $failed failed"
((failed == 0))
