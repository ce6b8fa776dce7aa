#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fails when the README's quick start differs from examples/00_quickstart.cpp (which CI compiles
# and runs), so the README never shows code that does not build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
readme_code=$(awk '/^```cpp quickstart$/{f=1;next} /^```$/{f=0} f' "$root/README.md")
example_code=$(tail -n +2 "$root/examples/00_quickstart.cpp")
if [[ "$readme_code" != "$example_code" ]]; then
  echo "README quick start differs from examples/00_quickstart.cpp (minus its first comment line)" >&2
  diff <(echo "$readme_code") <(echo "$example_code") >&2 || true
  exit 1
fi
echo "README quick start matches examples/00_quickstart.cpp ($(echo "$readme_code" | wc -l) lines)"
