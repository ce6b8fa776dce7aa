#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every public header (outside detail/) must be documented as a file, in its own `/// @file`
# comment or in docs/reference.dox: Doxygen checks the functions, variables, enums and macros at
# file and namespace scope of documented files only. Run by the agentbus_docs target.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
missing=0
while IFS= read -r h; do
  grep -q "^/// @file $h\$" "$root/docs/reference.dox" && continue
  grep -q '^/// @file$' "$root/include/$h" && continue
  echo "docs/reference.dox: $h is not documented: add \`/// @file $h\` and a \`/// @brief\` line" >&2
  missing=1
done < <(cd "$root/include" && find agentbus -name '*.hpp' -not -path '*/detail/*' | sort)
exit $missing
