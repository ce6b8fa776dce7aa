#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The interop test with the official NATS JavaScript client (issue 11):
#
#   bash tests/interop/run_js_interop.sh path/to/agentbus_interop_peer [path/to/nats_js_peer.mjs]
#
# 1. finds node and npm, installs the npm package `nats` (2.x) into a scratch directory
#    (mktemp -d, removed at exit; nothing is written into the source tree);
# 2. starts nats-server on 127.0.0.1 on a port it picks itself (-p -1, read back from its ports
#    file), as a child of this script;
# 3. runs the agentbus peer (C++, agentbus_peer.cpp) and, once it is ready, the JS peer
#    (nats_js_peer.mjs), each under `timeout 60`;
# 4. stops the server by its PID (SIGINT, then wait).
# Exits 0 when both peers passed every check, 1 when anything did not match, 77 (skipped) when
# node, npm, the `nats` package or nats-server cannot be had (it says which and why).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
peer=${1:-}
script=${2:-$here/nats_js_peer.mjs}
skip() {
  echo "SKIPPED: $*"
  exit 77
}
fail() {
  echo "FAILED: $*"
  exit 1
}
[[ -n $peer && -x $peer ]] || fail "the agentbus peer program '$peer' is not built (usage: $0 path/to/agentbus_interop_peer)"
[[ -r $script ]] || fail "no JS peer script at $script"

node=$(command -v node || command -v nodejs || true)
[[ -n $node ]] || skip "node is not installed (Debian: apt-get install nodejs npm)"
npm=$(command -v npm || true)
[[ -n $npm ]] || skip "npm is not installed (Debian: apt-get install npm)"
node_major=$("$node" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
((node_major >= 14)) || skip "node $("$node" --version 2>&1) is older than the NATS JavaScript client 2.x needs (14)"

server=""
if [[ -n ${AGENTBUS_NATS_SERVER:-} ]]; then
  [[ -x $AGENTBUS_NATS_SERVER ]] || skip "AGENTBUS_NATS_SERVER=$AGENTBUS_NATS_SERVER is not a program"
  server=$AGENTBUS_NATS_SERVER
else
  for candidate in /usr/sbin/nats-server "$(command -v nats-server || true)" /usr/bin/nats-server /usr/local/bin/nats-server; do
    [[ -z $server && -n $candidate && -x $candidate ]] && server=$candidate
  done
fi
[[ -n $server ]] || skip "nats-server is not installed (Debian: apt-get install nats-server)"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/agentbus-interop-XXXXXX")
server_pid="" cpp_pid=""
cleanup() {
  if [[ -n $cpp_pid ]]; then
    kill "$cpp_pid" 2>/dev/null
    wait "$cpp_pid" 2>/dev/null
  fi
  if [[ -n $server_pid ]]; then
    kill -INT "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

# ---- the NATS JavaScript client, into the scratch directory only ----
mkdir -p "$scratch/js"
echo "node $("$node" --version), npm $("$npm" --version 2>/dev/null): installing nats@2 into a scratch directory"
if ! timeout 120 "$npm" install --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
  --prefix "$scratch/js" nats@2 >"$scratch/npm.log" 2>&1; then
  tail -n 15 "$scratch/npm.log"
  skip "npm could not install the package nats@2 (no access to the npm registry?): see npm's output above"
fi
nats_js_version=$("$node" -p 'require(process.argv[1]).version' "$scratch/js/node_modules/nats/package.json" 2>/dev/null || true)
[[ -n $nats_js_version ]] || skip "npm reported success but $scratch/js/node_modules/nats is missing"
# An ES module resolves `nats` from its own directory: the script runs beside node_modules/.
cp "$script" "$scratch/js/nats_js_peer.mjs"

# ---- nats-server on 127.0.0.1, a free port ----
mkdir -p "$scratch/server"
"$server" -a 127.0.0.1 -p -1 --ports_file_dir "$scratch/server" -l "$scratch/server/server.log" &
server_pid=$!
ports="$scratch/server/nats-server_$server_pid.ports"
url=""
for _ in $(seq 500); do
  if [[ -s $ports ]]; then
    url=$(sed -n 's/.*"\(nats:\/\/127\.0\.0\.1:[0-9]*\)".*/\1/p' "$ports" | head -n 1)
    [[ -n $url ]] && break
  fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.02
done
if [[ -z $url ]]; then
  cat "$scratch/server/server.log" 2>/dev/null
  fail "nats-server ($server) did not report a port on 127.0.0.1"
fi
echo "nats-server $("$server" --version 2>&1 | head -n 1) (pid $server_pid) at $url; NATS JavaScript client $nats_js_version"

# ---- the agentbus peer, then the JS peer ----
: >"$scratch/agentbus.log"
timeout 60 "$peer" "$url" >"$scratch/agentbus.log" 2>&1 &
cpp_pid=$!
ready=0
for _ in $(seq 1000); do
  if grep -q '^agentbus-peer: ready' "$scratch/agentbus.log"; then
    ready=1
    break
  fi
  kill -0 "$cpp_pid" 2>/dev/null || break
  sleep 0.02
done
if ((!ready)); then
  sed 's/^/[agentbus] /' "$scratch/agentbus.log"
  fail "the agentbus peer did not become ready"
fi

echo "--- nats.js peer"
timeout 60 "$node" "$scratch/js/nats_js_peer.mjs" "$url" 2>&1 | sed 's/^/[nats.js] /'
js_rc=${PIPESTATUS[0]}
cpp_rc=0
wait "$cpp_pid" || cpp_rc=$?
cpp_pid=""
echo "--- agentbus peer"
sed 's/^/[agentbus] /' "$scratch/agentbus.log"

kill -INT "$server_pid"
server_rc=0
wait "$server_pid" || server_rc=$?
server_pid=""

echo "--- nats.js peer exited $js_rc, agentbus peer exited $cpp_rc, nats-server exited $server_rc"
((js_rc == 124)) && echo "FAILED: the nats.js peer timed out (60 s)"
((cpp_rc == 124)) && echo "FAILED: the agentbus peer timed out (60 s)"
if ((js_rc != 0 || cpp_rc != 0)); then
  fail "a peer saw something that does not match the wire format (the 'not ok' lines above)"
fi
echo "PASSED: the NATS JavaScript client and agentbus agree on docs/wire-format.md"
exit 0
