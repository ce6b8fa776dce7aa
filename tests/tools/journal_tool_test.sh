#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Tests of agentbus-journal against a journal written by make_journal (see its header for
# the exact content: 1000 records, offsets 0..999, topics by offset % 10, 1 ms apart).
#
# Usage: journal_tool_test.sh TOOL MAKE_JOURNAL WORKDIR [SECTION...]
#   SECTION: usage stats dump tail follow verify index consistency permissions (default: all)
set -u

tool=$1
make_journal=$2
work=$3
shift 3
sections=${*:-usage stats dump tail follow verify index consistency permissions}

failures=0
pass() { printf 'ok    %s\n' "$1"; }
fail() {
  printf 'FAIL  %s\n' "$1"
  failures=$((failures + 1))
}
# check NAME EXPECTED ACTUAL
check() {
  if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}
# check_contains NAME TEXT NEEDLE
check_contains() {
  if [[ "$2" == *"$3"* ]]; then pass "$1"; else fail "$1: output lacks '$3'"$'\n'"$2"; fi
}

mkdir -p "$work"
work=$(cd "$work" && pwd)
j=$work/journal
rm -rf "$j"
"$make_journal" "$j" --records 1000 --segment-bytes 65536 >/dev/null || {
  echo "make_journal failed"
  exit 1
}

# The JSON checks (and the frame positions the consistency section damages) need python3.
# Without it they are skipped with a message, or fail when AGENTBUS_REQUIRE_PYTHON=1 (CI sets
# it, so a runner that lost python3 cannot pass without checking).
have_python=0
if command -v python3 >/dev/null 2>&1; then have_python=1; fi
# python_or_skip NAME: true when python3 is there; otherwise skips (or fails) check NAME.
python_or_skip() {
  ((have_python)) && return 0
  if [[ ${AGENTBUS_REQUIRE_PYTHON:-0} == 1 ]]; then
    fail "$1: python3 missing and AGENTBUS_REQUIRE_PYTHON=1"
  else
    echo "skip  $1 (no python3; set AGENTBUS_REQUIRE_PYTHON=1 to make this a failure)"
  fi
  return 1
}

run_usage() {
  "$tool" --help >"$work/out" 2>&1
  check "--help exits 0" 0 $?
  check_contains "--help prints usage" "$(cat "$work/out")" "usage:"
  check_contains "--help documents exit status 3" "$(cat "$work/out")" "3  verify only: index damage alone"
  "$tool" >/dev/null 2>&1
  check "no command: exit 2" 2 $?
  "$tool" frobnicate "$j" >/dev/null 2>&1
  check "unknown command: exit 2" 2 $?
  "$tool" dump >/dev/null 2>&1
  check "dump without a directory: exit 2" 2 $?
  "$tool" dump "$j" --since yesterday >/dev/null 2>&1
  check "bad --since: exit 2" 2 $?
  "$tool" dump "$j" --topic 'a..b' >/dev/null 2>&1
  check "bad --topic: exit 2" 2 $?
  "$tool" dump "$j" --limit x >/dev/null 2>&1
  check "bad --limit: exit 2" 2 $?
  "$tool" stats "$j" -f >/dev/null 2>&1
  check "option of another command: exit 2" 2 $?
  "$tool" stats "$work/no-such-journal" >/dev/null 2>"$work/err"
  check "missing journal: exit 1" 1 $?
  check_contains "missing journal: says so" "$(cat "$work/err")" "no-such-journal"
}

run_stats() {
  local out
  out=$("$tool" stats "$j")
  check "stats exits 0" 0 $?
  check_contains "stats: records" "$out" "records      1000"
  check_contains "stats: offsets" "$out" "offsets      0 .. 999"
  check_contains "stats: time range" "$out" "2024-05-01T12:00:00.000000000Z .. 2024-05-01T12:00:00.999000000Z"
  check_contains "stats: corrupt" "$out" "corrupt      0"
  check_contains "stats: topic count" "$out" "topics       4"
  # Files (a segment file's size is its capacity) and what they take on disk (they are sparse
  # beyond what the writer allocated): both, and disk use no more than the files.
  if [[ $out =~ segments\ +[0-9]+\ \(([0-9.]+\ [KMG]?i?B)\ of\ files,\ ([0-9.]+\ [KMG]?i?B)\ on\ disk\) ]]; then
    pass "stats: file bytes and disk use"
  else
    fail "stats: no '(... of files, ... on disk)' on the segments line"$'\n'"$out"
  fi
  local segs
  segs=$(sed -n 's/^segments *\([0-9]*\).*/\1/p' <<<"$out")
  if [[ -n "$segs" && "$segs" -ge 2 ]]; then pass "stats: several segments ($segs)"; else fail "stats: segments '$segs'"; fi
  # Topics sorted by count, most first.
  local topics
  topics=$(awk '/^topics/{t=1; next} t{print $1, $2}' <<<"$out" | tr '\n' ';')
  check "stats: topics by count" "500 tasks.planner.created;300 tasks.worker.done;100 agents.alpha.heartbeat;100 metrics.cpu;" "$topics"
  if python_or_skip "stats --json parses and counts"; then
    "$tool" stats "$j" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["records"] == 1000, s
assert s["first_offset"] == 0 and s["last_offset"] == 999, s
assert s["topics"][0] == {"topic": "tasks.planner.created", "records": 500}, s["topics"]
assert 0 < s["disk_bytes"] <= s["file_bytes"] + 65536, s
'
    check "stats --json parses and counts" 0 $?
  fi
}

run_dump() {
  local out
  out=$("$tool" dump "$j")
  check "dump exits 0" 0 $?
  check "dump: one line per record" 1000 "$(wc -l <<<"$out")"
  check_contains "dump: first line" "$(head -n1 <<<"$out")" \
    '0  2024-05-01T12:00:00.000000000Z  tasks.planner.created  demo.event@2  32 B  agent-0  {trace=t-0}  "event 0 on tasks.planner.created"'
  check_contains "dump: binary payload in hex" "$(sed -n 10p <<<"$out")" \
    "metrics.cpu  demo.event@2  16 B  agent-0  {trace=t-9}  090a0b0c0d0e0f101112131415161718"
  check_contains "dump: escaped text" "$(sed -n 7p <<<"$out")" '"say \"hi\"\n\ttab, back\\slash, café, ✓ done"'
  check "dump --topic 'tasks.>'" 800 "$("$tool" dump "$j" --topic 'tasks.>' | wc -l)"
  check "dump --topic 'tasks.*.done'" 300 "$("$tool" dump "$j" --topic 'tasks.*.done' | wc -l)"
  check "dump --topic 'metrics.cpu'" 100 "$("$tool" dump "$j" --topic metrics.cpu | wc -l)"
  check "dump --limit 5" 5 "$("$tool" dump "$j" --limit 5 | wc -l)"
  out=$("$tool" dump "$j" --from 990)
  check "dump --from 990: count" 10 "$(wc -l <<<"$out")"
  check "dump --from 990: first offset" 990 "$(head -n1 <<<"$out" | awk '{print $1}')"
  check "dump --since" 100 "$("$tool" dump "$j" --since 2024-05-01T12:00:00.900Z | wc -l)"
  check "dump --since with a zone" 100 "$("$tool" dump "$j" --since 2024-05-01T14:00:00.900+02:00 | wc -l)"
  check "dump --since-ns" 100 "$("$tool" dump "$j" --since-ns 1714564800900000000 | wc -l)"
  check "dump --payload hex" "6576656e742030" \
    "$("$tool" dump "$j" --limit 1 --payload hex --preview 7 | grep -o '6576656e742030')"
  if "$tool" dump "$j" --limit 1 --payload none | grep -q 'event 0'; then
    fail "dump --payload none still shows the payload"
  else
    pass "dump --payload none"
  fi
  out=$("$tool" dump "$j" --json)
  check "dump --json: one object per line" 1000 "$(wc -l <<<"$out")"
  if python_or_skip "dump --json parses, fields and escaping"; then
    python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' <<<"$out"
    check "dump --json parses" 0 $?
    python3 -c '
import json, sys
recs = [json.loads(l) for l in sys.stdin]
assert [r["offset"] for r in recs] == list(range(1000))
r = recs[6]
assert r["payload"] == "say \"hi\"\n\ttab, back\\slash, caf\u00e9, \u2713 done", r
assert r["topic"] == "tasks.worker.done" and r["schema_version"] == 2, r
assert recs[0]["headers"] == [{"key": "trace", "value": "t-0"}], recs[0]
assert recs[9]["payload_encoding"] == "hex" and recs[9]["payload"] == "090a0b0c0d0e0f101112131415161718", recs[9]
assert recs[1]["time"] == "2024-05-01T12:00:00.001000000Z" and recs[1]["published_ns"] == 1714564800001000000
' <<<"$out"
    check "dump --json: fields and escaping" 0 $?
  fi
}

run_tail() {
  local out
  out=$("$tool" tail "$j")
  check "tail exits 0" 0 $?
  check "tail: 10 lines" 10 "$(wc -l <<<"$out")"
  check "tail: first offset" 990 "$(head -n1 <<<"$out" | awk '{print $1}')"
  check "tail: last offset" 999 "$(tail -n1 <<<"$out" | awk '{print $1}')"
  out=$("$tool" tail -n 3 "$j" --topic metrics.cpu)
  check "tail -n 3 --topic: offsets" "979 989 999" "$(awk '{print $1}' <<<"$out" | tr '\n' ' ' | sed 's/ $//')"
  check "tail -n 0" 0 "$("$tool" tail -n 0 "$j" | wc -l)"
  check "tail --from 995" 5 "$("$tool" tail --from 995 "$j" | wc -l)"
}

# wait_lines FILE N: until FILE has N lines (10 s at most)
wait_lines() {
  local i
  for ((i = 0; i < 200; ++i)); do
    [[ -f "$1" && $(wc -l <"$1") -ge $2 ]] && return 0
    sleep 0.05
  done
  return 1
}

run_follow() {
  local fj=$work/follow
  rm -rf "$fj"
  cp -r "$j" "$fj"
  # The redirection below truncates in the background job: an output file left by an earlier
  # run could satisfy wait_lines before that happens.
  rm -f "$work/follow.out" "$work/follow.err"
  "$tool" tail -f "$fj" --json --poll-ms 20 >"$work/follow.out" 2>"$work/follow.err" &
  local pid=$!
  if wait_lines "$work/follow.out" 10; then pass "tail -f: the last 10 first"; else fail "tail -f: no initial lines"; fi
  "$make_journal" "$fj" --append --records 25 >/dev/null
  check "make_journal --append" 0 $?
  if wait_lines "$work/follow.out" 35; then pass "tail -f: picked up appended records"; else fail "tail -f: saw $(wc -l <"$work/follow.out") lines, expected 35"; fi
  # And again, while it is parked.
  sleep 0.2
  "$make_journal" "$fj" --append --records 5 >/dev/null
  if wait_lines "$work/follow.out" 40; then pass "tail -f: picked up a second batch"; else fail "tail -f: saw $(wc -l <"$work/follow.out") lines, expected 40"; fi
  kill -TERM "$pid"
  wait "$pid"
  check "tail -f: exits 0 on SIGTERM" 0 $?
  check "tail -f: last offset" '"offset":1029' "$(tail -n1 "$work/follow.out" | grep -o '"offset":[0-9]*')"
  check "tail -f: offsets in order, none twice" "$(seq 990 1029 | tr '\n' ' ')" \
    "$(grep -o '"offset":[0-9]*' "$work/follow.out" | cut -d: -f2 | tr '\n' ' ')"
  if python_or_skip "tail -f --json parses"; then
    python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' <"$work/follow.out"
    check "tail -f --json parses" 0 $?
  fi
  rm -rf "$fj"
}

run_verify() {
  local vj=$work/verify
  rm -rf "$vj"
  cp -r "$j" "$vj"
  local out
  out=$("$tool" verify "$vj")
  check "verify: clean journal exits 0" 0 $?
  check_contains "verify: counts every record" "$out" "records      1000 valid"
  check_contains "verify: result" "$out" "result       OK"
  # Flip one byte in the middle of the first segment (sealed, full of records).
  local seg
  seg=$(ls "$vj"/*.log | head -n1)
  # The byte: the 'e' of a payload "event N on ..." halfway through the segment's records, so
  # that it is covered by a CRC whatever the record sizes (padding between records is not).
  local positions pos
  mapfile -t positions < <(grep -obUa 'event [0-9]* on' "$seg" | cut -d: -f1)
  pos=${positions[$((${#positions[@]} / 2))]}
  printf '\xff' | dd of="$seg" bs=1 seek="$pos" conv=notrunc 2>/dev/null
  out=$("$tool" verify "$vj")
  check "verify: damaged journal exits 1" 1 $?
  check_contains "verify: names the segment" "$out" "problem      $(basename "$seg") @ byte"
  check_contains "verify: result" "$out" "result       DAMAGED"
  out=$("$tool" stats "$vj" 2>&1)
  check_contains "stats: counts the damaged record" "$out" "corrupt      1"
  local n
  n=$("$tool" dump "$vj" 2>/dev/null | wc -l)
  check "dump: skips the damaged record only" 999 "$n"
  rm -rf "$vj"

  # A damaged file header in a segment other than the first: verify must end (it used to look
  # the same segment up by name again and again) and report the damage.
  cp -r "$j" "$vj"
  seg=$(ls "$vj"/*.log | sed -n 2p)
  printf '\xff' | dd of="$seg" bs=1 seek=9 conv=notrunc 2>/dev/null
  out=$(timeout 60 "$tool" verify "$vj")
  local rc=$?
  check "verify: damaged header of a later segment exits 1 (and ends)" 1 $rc
  check_contains "verify: damaged header: result" "$out" "result       DAMAGED"
  rm -rf "$vj"

  # The last segment's file deleted from outside, its index left behind: verify says so; the
  # next writer appends past the offsets that index names, and the gap stays on record.
  cp -r "$j" "$vj"
  seg=$(ls "$vj"/*.log | tail -n1)
  rm "$seg"
  out=$("$tool" verify "$vj")
  check "verify: deleted last segment exits 1" 1 $?
  check_contains "verify: deleted last segment: names it" "$out" "its segment $(basename "$seg") is missing"
  "$make_journal" "$vj" --append --records 0 >/dev/null
  out=$("$tool" verify "$vj")
  check "verify: deleted last segment, reopened: still damaged" 1 $?
  check_contains "verify: deleted last segment, reopened: the gap is on record" "$out" "are missing before this segment"
  rm -rf "$vj"
}

# verify_rc DIR: verify's exit status, its output in $work/verify.out
verify_rc() {
  "$tool" verify "$1" >"$work/verify.out" 2>&1
  echo $?
}

# Index damage is a warning class of its own (exit 3, "warning" lines, records intact), never
# silent; the next writer's recovery rebuilds the index, and verify is clean again.
run_index() {
  local ij=$work/index idx rc out
  # One flipped byte in an entry of a sealed segment's index.
  rm -rf "$ij"
  cp -r "$j" "$ij"
  idx=$(ls "$ij"/*.idx | sed -n 2p)
  printf '\xff' | dd of="$idx" bs=1 seek=$((64 + 32 * 3 + 5)) conv=notrunc 2>/dev/null
  rc=$(verify_rc "$ij")
  out=$(cat "$work/verify.out")
  check "verify: damaged index entry exits 3" 3 "$rc"
  check_contains "verify: damaged index entry: warning names the file" "$out" "warning      $(basename "$idx") @ byte 160"
  check_contains "verify: damaged index entry: records intact" "$out" "records      1000 valid"
  check_contains "verify: damaged index entry: result" "$out" "result       INDEX DAMAGED"
  check_contains "verify: damaged index entry: counted" "$out" "index        1 file damaged"
  if grep -q '^problem' <<<"$out"; then fail "verify: index damage reported as record damage"; else pass "verify: index damage is not record damage"; fi
  # Recovery rebuilds it.
  "$make_journal" "$ij" --append --records 0 >/dev/null
  rc=$(verify_rc "$ij")
  check "verify: index rebuilt by the next writer: exits 0" 0 "$rc"
  check_contains "verify: index rebuilt: result" "$(cat "$work/verify.out")" "result       OK"

  # A shortened index file.
  rm -rf "$ij"
  cp -r "$j" "$ij"
  idx=$(ls "$ij"/*.idx | head -n1)
  truncate -s 150 "$idx"
  rc=$(verify_rc "$ij")
  out=$(cat "$work/verify.out")
  check "verify: shortened index exits 3" 3 "$rc"
  check_contains "verify: shortened index: says so" "$out" "shortened"
  check_contains "verify: shortened index: missing entries" "$out" "index entries are missing"
  "$make_journal" "$ij" --append --records 0 >/dev/null
  check "verify: shortened index rebuilt: exits 0" 0 "$(verify_rc "$ij")"

  # Every index file deleted.
  rm -rf "$ij"
  cp -r "$j" "$ij"
  rm "$ij"/*.idx
  local nseg
  nseg=$(ls "$ij"/*.log | wc -l)
  rc=$(verify_rc "$ij")
  out=$(cat "$work/verify.out")
  check "verify: deleted indexes exit 3" 3 "$rc"
  check "verify: deleted indexes: one warning per segment" "$nseg" "$(grep -c '^warning .*index file missing' <<<"$out")"
  check "dump: deleted indexes: every record" 1000 "$("$tool" dump "$ij" 2>/dev/null | wc -l)"
  "$make_journal" "$ij" --append --records 0 >/dev/null
  check "verify: deleted indexes rebuilt: exits 0" 0 "$(verify_rc "$ij")"
  check "recovery: every index back" "$nseg" "$(ls "$ij"/*.idx | wc -l)"

  # Record damage and index damage together: record damage decides (exit 1), both are listed.
  rm -rf "$ij"
  cp -r "$j" "$ij"
  idx=$(ls "$ij"/*.idx | head -n1)
  printf '\xff' | dd of="$idx" bs=1 seek=$((64 + 5)) conv=notrunc 2>/dev/null
  local seg positions pos
  seg=$(ls "$ij"/*.log | sed -n 2p)
  mapfile -t positions < <(grep -obUa 'event [0-9]* on' "$seg" | cut -d: -f1)
  pos=${positions[$((${#positions[@]} / 2))]}
  printf '\xff' | dd of="$seg" bs=1 seek="$pos" conv=notrunc 2>/dev/null
  rc=$(verify_rc "$ij")
  out=$(cat "$work/verify.out")
  check "verify: record and index damage exits 1" 1 "$rc"
  check_contains "verify: record and index damage: the problem" "$out" "problem      $(basename "$seg")"
  check_contains "verify: record and index damage: the warning" "$out" "warning      $(basename "$idx")"
  rm -rf "$ij"
}

# dump, stats and verify on a last segment no writer has reopened (so no recovery has put an
# index entry after the damage): the same records, the damage reported by each, exit 1.
run_consistency() {
  local cj=$work/consistency seg kind pos valid lines rc
  python_or_skip "consistency (frame positions are found with python3)" || return 0
  for kind in zero-mid zero-near garbled-length torn-tail; do
    rm -rf "$cj"
    cp -r "$j" "$cj"
    seg=$(ls "$cj"/*.log | tail -n1)
    # Frame positions of the last segment (length words, 8-byte aligned frames after the header).
    mapfile -t frames < <(python3 -c '
import struct, sys
d = open(sys.argv[1], "rb").read()
pos = 64
while pos + 8 <= len(d):
    n = struct.unpack_from("<I", d, pos)[0]
    if n == 0 or n == 0xFFFFFFFF: break
    print(pos)
    pos += (8 + n + 7) // 8 * 8
print(pos)' "$seg")
    local count=$((${#frames[@]} - 1))
    case $kind in
      zero-mid) printf '\x00\x00\x00\x00' | dd of="$seg" bs=1 seek="${frames[$((count / 2))]}" conv=notrunc 2>/dev/null ;;
      zero-near) printf '\x00\x00\x00\x00' | dd of="$seg" bs=1 seek="${frames[$((count - 3))]}" conv=notrunc 2>/dev/null ;;
      garbled-length) printf '\xff\x7f' | dd of="$seg" bs=1 seek="$((${frames[$((count / 2))]} + 1))" conv=notrunc 2>/dev/null ;;
      torn-tail) printf 'torn record bytes' | dd of="$seg" bs=1 seek="$((${frames[$count]} + 8))" conv=notrunc 2>/dev/null ;;
    esac
    rc=$(verify_rc "$cj")
    check "$kind: verify exits 1" 1 "$rc"
    valid=$(sed -n 's/^records *\([0-9]*\) valid.*/\1/p' "$work/verify.out")
    "$tool" dump "$cj" >"$work/dump.out" 2>"$work/dump.err"
    rc=$?
    check "$kind: dump exits 1" 1 "$rc"
    lines=$(wc -l <"$work/dump.out")
    check "$kind: dump shows the records verify counts" "$valid" "$lines"
    check_contains "$kind: dump reports the damage" "$(cat "$work/dump.err")" "$(basename "$seg")"
    check_contains "$kind: verify's reader agrees" "$(cat "$work/verify.out")" "reader       read $lines records"
    "$tool" stats "$cj" >"$work/stats.out" 2>&1
    check "$kind: stats exits 1" 1 $?
    check_contains "$kind: stats counts it" "$(cat "$work/stats.out")" "corrupt      1"
    "$tool" tail -n 2000 "$cj" >/dev/null 2>&1
    check "$kind: tail exits 1" 1 $?
  done
  rm -rf "$cj"
}

# File modes (journal_options::file_mode): owner-only by default, group-readable on request;
# and the tool reads a journal it may not write (as another user when run as root, else on a
# read-only copy).
mode_of() { stat -c %a "$1"; }
modes_in() {  # the distinct modes of the files in a directory
  local f
  for f in "$1"/*; do mode_of "$f"; done | sort -u | tr '\n' ' '
}
run_permissions() {
  local pj=$work/group-readable out rc
  check "default: directory 0700" 700 "$(mode_of "$j")"
  check "default: files 0600" "600 " "$(modes_in "$j")"
  rm -rf "$pj"
  (umask 022 && "$make_journal" "$pj" --records 50 --segment-bytes 4096 --file-mode 0640 >/dev/null) || fail "make_journal --file-mode 0640"
  check "file_mode 0640: directory 0750" 750 "$(mode_of "$pj")"
  check "file_mode 0640: files 0640" "640 " "$(modes_in "$pj")"
  if [[ $(id -u) -eq 0 ]] && command -v setpriv >/dev/null 2>&1; then
    # As nobody, in the journal's group: may read the files, may not write the directory.
    local as_reader=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
    if ! "${as_reader[@]}" test -x "$work"; then
      echo "skip  reading as another user ($work is not searchable by uid 65534)"
      return 0
    fi
    chgrp -R 65534 "$pj"
    out=$("${as_reader[@]}" "$tool" stats "$pj" 2>&1)
    check "group reader: stats exits 0" 0 $?
    check_contains "group reader: stats counts" "$out" "records      50"
    check "group reader: dump reads every record" 50 "$("${as_reader[@]}" "$tool" dump "$pj" 2>/dev/null | wc -l)"
    "${as_reader[@]}" "$tool" verify "$pj" >"$work/verify.out" 2>&1
    check "group reader: verify exits 0" 0 $?
    if "${as_reader[@]}" touch "$pj/written" 2>/dev/null; then fail "group reader: could write the directory"; else pass "group reader: may not write"; fi
    # The owner-only journal: the other user cannot read it at all.
    chgrp -R 65534 "$j"
    "${as_reader[@]}" "$tool" stats "$j" >/dev/null 2>"$work/err"
    rc=$?
    chgrp -R 0 "$j"
    check "owner-only: another user's stats exits 1" 1 "$rc"
    check_contains "owner-only: says why" "$(cat "$work/err")" "ermission denied"
  else
    local ro=$work/read-only
    rm -rf "$ro"
    cp -r "$pj" "$ro"
    chmod -R a-w "$ro"
    out=$("$tool" stats "$ro" 2>&1)
    check "read-only copy: stats exits 0" 0 $?
    check_contains "read-only copy: stats counts" "$out" "records      50"
    check "read-only copy: dump reads every record" 50 "$("$tool" dump "$ro" 2>/dev/null | wc -l)"
    "$tool" verify "$ro" >"$work/verify.out" 2>&1
    check "read-only copy: verify exits 0" 0 $?
    if touch "$ro/written" 2>/dev/null; then fail "read-only copy: could write the directory"; else pass "read-only copy: may not write"; fi
    chmod -R u+w "$ro"
    rm -rf "$ro"
  fi
  rm -rf "$pj"
}

for s in $sections; do
  echo "== $s"
  "run_$s"
done
echo
if ((failures)); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
