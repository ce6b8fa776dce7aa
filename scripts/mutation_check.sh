#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The mutation check: plants each one-line bug of tests/mutations/mutations.txt in a scratch
# copy of include/, rebuilds only the test file(s) the entry names against it, runs the named
# Catch2 test spec and expects it to fail. A mutation the tests do not notice SURVIVED, and
# the check fails: a guarantee the README states is then defended by no test.
#
#   bash scripts/mutation_check.sh             the entries marked ci (the CI step, a few minutes)
#   bash scripts/mutation_check.sh --full      every entry
#   bash scripts/mutation_check.sh --only X    the entries whose id or guarantee contains X
#                                              (X,Y,...: any of them)
#   bash scripts/mutation_check.sh --list      print the list (id, tier, guarantee, file) and exit
#   --rev REV                                  headers, tests and compile_fail.sh as committed in
#                                              REV (e.g. HEAD), not the working tree's; the list
#                                              is the working tree's
#   --no-baseline                              do not first build and run the unmutated test
#                                              programs (CI: its test suite has just passed them);
#                                              a spec that matches no test is still an error
#   -j N                                       N mutants (and unmutated programs) built at once
#                                              (default 1; CI gives it its 2 cores)
#
# An entry whose original text is not found exactly once in its header is an error (the list
# must not rot silently when a header changes), as is a mutant that does not compile (kind
# run) or a test spec that does not pass on the unmutated headers (checked first, once per
# test program). Kind compile-fail entries are killed when the program of tests/compile_fail/
# they name compiles, or no longer fails first with the message on its line 2.
# Environment: CXX (default g++), MUTATION_LIST (another list, default the one above),
# MUTATION_BUILD_DIR (default build-mutation, keeps the Catch2
# main and the unmutated test programs between runs), MUTATION_TIMEOUT (the most seconds a
# mutant's test run may take, default 120; each gets 10x its unmutated run, at least 20 s: a
# mutant that hangs is killed by the timeout).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
list=${MUTATION_LIST:-$root/tests/mutations/mutations.txt}
usage() { awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "$0"; }

mode=ci only="" do_list=0 jobs=1 rev="" baseline=1
while (($#)); do
  case $1 in
    --full) mode=full; shift ;;
    --only) only=${2:?--only needs a name}; mode=full; shift 2 ;;
    --list) do_list=1; shift ;;
    --no-baseline) baseline=0; shift ;;
    --rev) rev=${2:?--rev needs a revision}; shift 2 ;;
    -j) jobs=${2:?-j needs a number}; shift 2 ;;
    -j*) jobs=${1#-j}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "mutation_check: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

cxx=${CXX:-g++}
build=${MUTATION_BUILD_DIR:-$root/build-mutation}
max_timeout=${MUTATION_TIMEOUT:-120}
flags=(-std=c++20 -O1 -g0 -pthread -w)
sep=' @@ '

# ---- read the list: tier @@ guarantee @@ id @@ kind @@ header @@ original @@ replacement @@ tests @@ spec
ids=() tiers=() guarantees=() kinds=() headers=() origs=() repls=() tests=() specs=()
lineno=0 bad=0
while IFS= read -r line || [[ -n $line ]]; do
  lineno=$((lineno + 1))
  [[ -z ${line//[[:space:]]/} || $line == \#* ]] && continue
  rest=$line f=()
  while [[ $rest == *"$sep"* ]]; do f+=("${rest%%"$sep"*}"); rest=${rest#*"$sep"}; done
  f+=("$rest")
  if ((${#f[@]} != 9)); then
    echo "mutation_check: $list:$lineno: ${#f[@]} fields, expected 9 separated by '$sep'" >&2; bad=1; continue
  fi
  case ${f[0]} in ci | full) ;; *) echo "mutation_check: $list:$lineno: tier '${f[0]}' is not ci or full" >&2; bad=1 ;; esac
  case ${f[3]} in run | compile-fail) ;; *) echo "mutation_check: $list:$lineno: kind '${f[3]}' is not run or compile-fail" >&2; bad=1 ;; esac
  for id in "${ids[@]}"; do [[ $id == "${f[2]}" ]] && { echo "mutation_check: $list:$lineno: duplicate id ${f[2]}" >&2; bad=1; }; done
  tiers+=("${f[0]}") guarantees+=("${f[1]}") ids+=("${f[2]}") kinds+=("${f[3]}") headers+=("${f[4]}")
  origs+=("${f[5]}") repls+=("${f[6]}") tests+=("${f[7]}") specs+=("${f[8]}")
done <"$list"
((bad == 0)) || exit 2

if ((do_list)); then
  for i in "${!ids[@]}"; do printf '%-4s %-34s %-28s %s\n' "${tiers[i]}" "${ids[i]}" "${guarantees[i]}" "${headers[i]}"; done
  exit 0
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/agentbus-mutation.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
src=$root
if [[ -n $rev ]]; then
  src=$scratch/src
  mkdir -p "$src"
  git -C "$root" archive "$rev" include tests scripts/compile_fail.sh | tar -x -C "$src"
fi

# Every entry's original text must be in its header exactly once, selected or not.
count() { ORIG=$1 perl -0777 -ne '$n = () = /\Q$ENV{ORIG}\E/g; print $n' "$2"; }
for i in "${!ids[@]}"; do
  h=$src/include/${headers[i]}
  if [[ ! -f $h ]]; then echo "mutation_check: ${ids[i]}: no header include/${headers[i]}" >&2; bad=1; continue; fi
  n=$(count "${origs[i]}" "$h")
  if [[ $n != 1 ]]; then
    echo "mutation_check: ${ids[i]}: the original text is found $n times in include/${headers[i]} (must be once): ${origs[i]}" >&2
    bad=1
  fi
  [[ ${origs[i]} != "${repls[i]}" ]] || { echo "mutation_check: ${ids[i]}: replacement equals original" >&2; bad=1; }
  for t in ${tests[i]//,/ }; do
    [[ -f $src/tests/$t ]] || { echo "mutation_check: ${ids[i]}: no test file tests/$t" >&2; bad=1; }
  done
done
((bad == 0)) || exit 2

selected=()
for i in "${!ids[@]}"; do
  if [[ -n $only ]]; then
    IFS=, read -r -a wanted <<<"$only"
    for w in "${wanted[@]}"; do
      if [[ ${ids[i]} == *"$w"* || ${guarantees[i]} == *"$w"* ]]; then selected+=("$i"); break; fi
    done
  elif [[ $mode == full || ${tiers[i]} == ci ]]; then
    selected+=("$i")
  fi
done
((${#selected[@]})) || { echo "mutation_check: no entry selected" >&2; exit 2; }

start=$SECONDS
mkdir -p "$build"

# The Catch2 main and the allocation counter, compiled once and kept (they include no header
# of include/, so no mutation changes them).
objects_key=$(cat "$src/tests/main.cpp" "$src/tests/support/allocation_counter.cpp" "$src/tests/support/allocation_counter.hpp" \
  <("$cxx" --version) <(echo "${flags[*]}") | sha256sum | cut -c1-16)
main_o=$build/catch_main.$objects_key.o support_o=$build/allocation_counter.$objects_key.o
if [[ ! -f $main_o ]]; then
  echo "mutation_check: compiling the Catch2 main (once)"
  "$cxx" -std=c++20 -O0 -g0 -c "$src/tests/main.cpp" -o "$main_o.tmp" && mv "$main_o.tmp" "$main_o"
fi
if [[ ! -f $support_o ]]; then
  "$cxx" "${flags[@]}" -I"$src/tests" -c "$src/tests/support/allocation_counter.cpp" -o "$support_o.tmp" && mv "$support_o.tmp" "$support_o"
fi

# build OUT INCLUDE_DIR TESTS: one program from the listed test files (comma-separated, under tests/).
# Tests of the NATS bridge (tests/transport/nats_*.cpp, jetstream*.cpp) build with the NATS client, libcrypto
# and zstd found by pkg-config, as agentbus::nats does (they need a nats-server to run).
build_program() {
  local out=$1 inc=$2 srcs=() extra=()
  for t in ${3//,/ }; do
    srcs+=("$src/tests/$t")
    if [[ ($t == transport/nats_* || $t == transport/jetstream*) && ${#extra[@]} -eq 0 ]]; then
      read -r -a extra <<<"-DAGENTBUS_TEST_NATS=1 -DAGENTBUS_NATS_SIGNING=1 -DAGENTBUS_NATS_ZSTD=1 $(pkg-config --cflags --libs libnats libcrypto libzstd)"
    fi
  done
  timeout 600 "$cxx" "${flags[@]}" -I"$inc" -I"$src/tests" "${srcs[@]}" "$main_o" "$support_o" "${extra[@]}" -o "$out"
}

# run PROGRAM SPEC LOG TIMEOUT DIR: the spec's tests, in directory DIR of their own; -w NoTests
# fails when the spec matches no test.
run_spec() {
  rm -rf "$5"; mkdir -p "$5"
  (cd "$5" || exit; timeout "$4" "$1" "$2" -w NoTests; exit $?) >"$3" 2>&1
}
now() { date +%s.%N; }

# ---- baselines: each test program built from the unmutated headers, each spec passing on it.
# Builds run -j at a time; a failed build is reported by the entries that need it.
declare -A baseline_ok=() run_timeout=() prog_of=()
tree_key=$(cd "$src" && find include tests/support -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
throttle() { while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done; }
for i in "${selected[@]}"; do
  ((baseline)) || break
  [[ ${kinds[i]} == run && -z ${prog_of[${tests[i]}]:-} ]] || continue
  srcs=()
  for t in ${tests[i]//,/ }; do srcs+=("$src/tests/$t"); done
  prog_key=$(cat <(echo "$tree_key ${tests[i]} ${flags[*]} $objects_key") "${srcs[@]}" | sha256sum | cut -c1-16)
  prog=$build/baseline.$prog_key
  prog_of[${tests[i]}]=$prog
  [[ -x $prog ]] && continue
  echo "mutation_check: building the unmutated ${tests[i]}"
  throttle
  (build_program "$prog.tmp" "$src/include" "${tests[i]}" >"$prog.log" 2>&1 && mv "$prog.tmp" "$prog") &
done
wait
for i in "${selected[@]}"; do
  [[ ${kinds[i]} == run ]] || continue
  key="${tests[i]}|${specs[i]}"
  [[ -n ${baseline_ok[$key]:-} ]] && continue
  if ((!baseline)); then baseline_ok[$key]=1 run_timeout[$key]=$max_timeout; continue; fi
  prog=${prog_of[${tests[i]}]}
  if [[ ! -x $prog ]]; then
    tail -n 30 "$prog.log" >&2
    echo "mutation_check: ${tests[i]} does not build on the unmutated headers" >&2
    baseline_ok[$key]="test does not build unmutated"; continue
  fi
  t0=$(now)
  if ! run_spec "$prog" "${specs[i]}" "$scratch/baseline.log" "$max_timeout" "$scratch/baseline"; then
    tail -n 30 "$scratch/baseline.log" >&2
    echo "mutation_check: ${ids[i]}: the spec '${specs[i]}' of ${tests[i]} does not pass on the unmutated headers" >&2
    baseline_ok[$key]="spec fails unmutated"; continue
  fi
  baseline_ok[$key]=1
  run_timeout[$key]=$(awk -v a="$t0" -v b="$(now)" -v m="$max_timeout" 'BEGIN { t = int(10 * (b - a)) + 1; if (t < 20) t = 20; if (t > m) t = m; print t }')
done
for i in "${selected[@]}"; do
  ((baseline)) || break
  [[ ${kinds[i]} == compile-fail ]] || continue
  if ! bash "$src/scripts/compile_fail.sh" --cxx "$cxx" "$src/tests/${tests[i]}" >"$scratch/baseline.log" 2>&1; then
    cat "$scratch/baseline.log" >&2
    echo "mutation_check: ${ids[i]}: tests/${tests[i]} does not pass the compile-fail check on the unmutated headers" >&2
    baseline_ok["${tests[i]}|${specs[i]}"]="fails unmutated"
  fi
done
((baseline)) && echo "mutation_check: baselines checked ($((SECONDS - start)) s)"
echo "mutation_check: ${#selected[@]} mutation(s)"

# ---- the mutants, -j at a time, each in a scratch directory of its own.
# mutate I: writes "status<TAB>seconds" to $scratch/result.I and prints a progress line.
mutate() {
  local i=$1
  local t0=$SECONDS id=${ids[i]} dir=$scratch/m$i status rc=0
  local key="${tests[i]}|${specs[i]}" log=$build/logs/${ids[i]}.log
  mkdir -p "$dir"
  cp -r "$src/include" "$dir/include"
  local h=$dir/include/${headers[i]}
  ORIG=${origs[i]} REPL=${repls[i]} perl -0777 -pi -e 's/\Q$ENV{ORIG}\E/$ENV{REPL}/' "$h"
  if cmp -s "$h" "$src/include/${headers[i]}"; then
    status="INVALID (the replacement did not land)"
  elif [[ -n ${baseline_ok[$key]:-} && ${baseline_ok[$key]} != 1 ]]; then
    status="INVALID (${baseline_ok[$key]})"
  elif [[ ${kinds[i]} == compile-fail ]]; then
    # The compile-fail check against the mutated headers: killed when it no longer passes.
    mkdir -p "$dir/cf/scripts" "$dir/cf/tests/compile_fail"
    cp "$src/scripts/compile_fail.sh" "$dir/cf/scripts/"
    ln -s "$dir/include" "$dir/cf/include"
    cp "$src/tests/${tests[i]}" "$dir/cf/tests/compile_fail/"
    if bash "$dir/cf/scripts/compile_fail.sh" --cxx "$cxx" "$dir/cf/tests/compile_fail/$(basename "${tests[i]}")" >"$log" 2>&1; then
      status=SURVIVED
    else
      status=killed
    fi
  elif ! build_program "$dir/mutant" "$dir/include" "${tests[i]}" >"$log" 2>&1; then
    status="INVALID (mutant does not compile)"
  else
    run_spec "$dir/mutant" "${specs[i]}" "$dir/run.log" "${run_timeout[$key]}" "$dir/run" || rc=$?
    cat "$dir/run.log" >>"$log"
    # Catch2 exits with the number of failed assertions; without its summary line the
    # program did not finish (a crash, or the timeout).
    if ((rc == 0)); then status=SURVIVED
    elif grep -q -e '^No tests ran' -e '^No test cases matched' "$dir/run.log"; then status="INVALID (the spec matches no test)"
    elif grep -q '^test cases:' "$dir/run.log"; then status=killed
    elif ((rc == 124)); then status="killed (timeout)"
    else status="killed (crash)"
    fi
  fi
  rm -rf "$dir"
  printf '%s\t%d\n' "$status" $((SECONDS - t0)) >"$scratch/result.$i"
  printf '  %-38s %-24s %3d s\n' "$id" "$status" $((SECONDS - t0))
}

mkdir -p "$build/logs"
for i in "${selected[@]}"; do
  throttle
  mutate "$i" &
done
wait

results=() survived=0 invalid=0
for i in "${selected[@]}"; do
  IFS=$'\t' read -r status secs <"$scratch/result.$i"
  case $status in SURVIVED) survived=$((survived + 1)) ;; INVALID*) invalid=$((invalid + 1)) ;; esac
  o=${origs[i]//|/\\|} r=${repls[i]//|/\\|}
  # shellcheck disable=SC2016  # the backquotes are Markdown
  results+=("$(printf '| %s | %s | `%s` → `%s` (%s) | %s | %d |' "${guarantees[i]}" "${ids[i]}" "$o" "$r" "${headers[i]#agentbus/}" "$status" "$secs")")
done

echo
echo "| guarantee | id | mutation | result | s |"
echo "|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
echo
echo "mutation_check: ${#selected[@]} mutation(s), $survived survived, $invalid invalid, $((SECONDS - start)) s (logs in $build/logs)"
((survived == 0 && invalid == 0))
