#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Tutorial 08: two processes exchange typed events and requests through a private nats-server.
#
#   bash examples/08_two_processes.sh [path/to/example_08_two_processes]
#
# Starts nats-server on 127.0.0.1 on a free port (-p -1; the port read back from its ports
# file), then the serving process ("pricing") and, once it is ready, the requesting one
# ("desk"); both must exit 0. The server is stopped by its own PID. Exits 77 (skipped) when
# nats-server or the example program is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
program=${1:-build/examples/example_08_two_processes}
if [[ ! -x $program ]]; then
  echo "skipped: $program is not built (it needs libnats: apt-get install libnats-dev)"
  exit 77
fi
server=$(command -v nats-server || true)
for candidate in /usr/sbin/nats-server /usr/bin/nats-server; do
  [[ -z $server && -x $candidate ]] && server=$candidate
done
if [[ -z $server ]]; then
  echo "skipped: nats-server is not installed (Debian: apt-get install nats-server)"
  exit 77
fi

work=$(mktemp -d)
server_pid="" pricing_pid=""
cleanup() {
  [[ -n $pricing_pid ]] && kill "$pricing_pid" 2>/dev/null && wait "$pricing_pid" 2>/dev/null
  if [[ -n $server_pid ]]; then
    kill -INT "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$server" -a 127.0.0.1 -p -1 --ports_file_dir "$work" -l "$work/server.log" &
server_pid=$!
ports="$work/nats-server_$server_pid.ports"
for _ in $(seq 200); do [[ -s $ports ]] && break; sleep 0.02; done
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nats"][0])' "$ports" 2>/dev/null ||
  sed -n 's/.*"\(nats:\/\/[^"]*\)".*/\1/p' "$ports")
[[ -n $url ]] || { echo "nats-server did not report its port"; exit 1; }
echo "nats-server $server_pid at $url"

"$program" pricing "$url" >"$work/pricing.out" 2>&1 &
pricing_pid=$!
for _ in $(seq 500); do grep -q "pricing: ready" "$work/pricing.out" && break; sleep 0.01; done
grep -q "pricing: ready" "$work/pricing.out" || { cat "$work/pricing.out"; echo "pricing never became ready"; exit 1; }

desk_rc=0
timeout 30 "$program" desk "$url" || desk_rc=$?
pricing_rc=0
wait "$pricing_pid" || pricing_rc=$?
pricing_pid=""
cat "$work/pricing.out"
echo "desk exited $desk_rc, pricing exited $pricing_rc"
[[ $desk_rc -eq 0 && $pricing_rc -eq 0 ]]
