#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# agentbus-journal consumers: lists the cursors example 07 stores beside its journal, and says
# DAMAGED (exit 1) once both copies of one are damaged.
#   consumers_test.sh AGENTBUS_JOURNAL EXAMPLE_07 WORKDIR
set -euo pipefail
tool=$1 example=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
"$example" "$work/journal" > "$work/example.out"
out=$("$tool" consumers "$work/journal")
echo "$out"
grep -q '^renderers  pattern=jobs.>  type=example.job  floor=' <<<"$out" || { echo "FAIL: the group's cursor is not listed"; exit 1; }
grep -q '^dlq-replay\.jobs\.-\.[0-9a-f]*  pattern=\$dlq.jobs.>  type=example.job' <<<"$out" ||
  { echo "FAIL: the dead-letter replay's cursor is not listed"; exit 1; }
"$tool" --help | grep -q 'consumers DIR' || { echo "FAIL: --help does not mention consumers"; exit 1; }
for copy in "$work/journal/consumers/renderers.cursor" "$work/journal/consumers/renderers.cursor.b"; do
  printf '\x7f' | dd of="$copy" bs=1 seek=20 conv=notrunc status=none
done
set +e
damaged=$("$tool" consumers "$work/journal")
status=$?
set -e
echo "$damaged"
[[ $status == 1 ]] || { echo "FAIL: exit status $status for a damaged cursor, not 1"; exit 1; }
grep -q '^renderers  DAMAGED: .*checksum' <<<"$damaged" || { echo "FAIL: the damage is not reported"; exit 1; }
echo "ok: agentbus-journal consumers"
