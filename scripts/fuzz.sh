#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fuzzes the journal's readers of untrusted bytes (record decoder, segment scan, recovery,
# readers) with libFuzzer for a while: fuzz/journal_fuzz.cpp over a copy of fuzz/corpus/.
#
#   scripts/fuzz.sh            60 seconds
#   scripts/fuzz.sh 600        ten minutes
#
# Needs clang and its libFuzzer runtime (Debian: clang, libclang-rt-14-dev; scripts/deps.sh
# installs them). Exits non-zero when the fuzzer finds a crash, a leak, a sanitizer report or
# a broken invariant; the input that did it is left in build-fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
cxx=${CXX_FUZZ:-clang++}
command -v "$cxx" >/dev/null || { echo "fuzz.sh: $cxx not found (install clang)" >&2; exit 2; }
mkdir -p build-fuzz/artifacts
"$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I include \
  fuzz/journal_fuzz.cpp -o build-fuzz/journal_fuzz
corpus=$(mktemp -d "${TMPDIR:-/tmp}/agentbus_fuzz_corpus.XXXXXX")
trap 'rm -rf "$corpus"' EXIT
cp fuzz/corpus/* "$corpus"/
echo "fuzzing the journal for ${seconds}s (corpus copy in $corpus)"
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=abort_on_error=1 \
  ./build-fuzz/journal_fuzz -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/ \
  "$corpus"
