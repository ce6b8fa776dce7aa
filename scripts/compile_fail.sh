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

passed=0 failed=0
for f in "${files[@]}"; do
  name=$(basename "$f" .cpp)
  expect=$(sed -n '2s/^\/\/ Must not compile\. expect: //p' "$f")
  if [[ -z $expect ]]; then
    echo "FAIL $name: no '// Must not compile. expect: ...' on line 2"; failed=$((failed + 1)); continue
  fi
  if out=$("$cxx" -std=c++20 -fsyntax-only -I"$root/include" "$f" 2>&1); then
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
