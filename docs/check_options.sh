#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fails when a field of a user-facing option struct is missing from docs/options.md (in the
# table under the struct's heading) or from the README's concept sections (as `.field`), so
# that neither falls behind the headers. CI runs it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
page="$root/docs/options.md"
readme="$root/README.md"
# struct name : header
structs=(
  publish_options:core/event.hpp
  bus_options:bus/options.hpp
  dedup_options:storage/dedup.hpp
  subscribe_options:bus/options.hpp
  mailbox_options:delivery/mailbox_options.hpp
  executor_options:agent/executor.hpp
  request_options:reply/request.hpp
  breaker_options:reply/breaker.hpp
  journal_options:journal/options.hpp
  retention:journal/options.hpp
  consumer_options:consumer/options.hpp
  backoff:consumer/options.hpp
  nats_options:transport/nats.hpp
  nats_request_options:bridge/nats.hpp
)
missing=0 checked=0
for entry in "${structs[@]}"; do
  name=${entry%%:*} header="$root/include/agentbus/${entry#*:}"
  # The data members of `struct name { ... };` (two-space indent; not static, using, functions).
  fields=$(awk -v s="struct $name {" '
    $0 == s { inside = 1; next }
    inside && /^};/ { exit }
    inside && /^  [A-Za-z]/ && !/^  (static|using|enum|struct|class|template|friend|\/\/)/ {
      decl = $0; sub(/\/\/.*/, "", decl)
      if (decl !~ /;/) next
      sub(/[={;].*/, "", decl)
      if (decl ~ /\(/) next
      n = split(decl, w, /[ \t*&]+/); while (n > 0 && w[n] == "") n--
      if (n >= 2) print w[n]
    }' "$header")
  [[ -n $fields ]] || { echo "check_options: found no fields of $name in ${entry#*:}" >&2; exit 1; }
  # The fields must appear in the table under this struct's own heading.
  section=$(awk -v h="$name" '/^#/ { inside = (index($0, "# " h " ") > 0) } inside' "$page")
  for f in $fields; do
    checked=$((checked + 1))
    grep -q "^| \`$f\` |" <<<"$section" || { echo "docs/options.md: $name::$f is not listed" >&2; missing=1; }
    grep -Eq "\.$f([^A-Za-z0-9_]|\$)" "$readme" || { echo "README.md: $name::$f is not named (as .$f)" >&2; missing=1; }
  done
done
((missing == 0)) || exit 1
echo "docs/options.md and README.md list all $checked option fields"
