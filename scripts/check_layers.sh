#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The dependency order of include/agentbus, written down once, and checked: a header may
# include headers of its own module or of a module listed before it, never after.
#
#   scripts/check_layers.sh           check; exit 1 naming every include that runs upwards
#   scripts/check_layers.sh --table   also print which module includes which (counts)
#
# docs/architecture.md explains the order. Top-level headers: fwd.hpp and version.hpp rank
# with detail (they include nothing of ours); agentbus.hpp is the umbrella, above everything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/include/agentbus"

order=(detail core router queue journal storage transport delivery bus agent reply consumer bridge)

declare -A rank=()
for i in "${!order[@]}"; do rank[${order[$i]}]=$i; done
module_of() {  # path below include/agentbus -> module name
  case $1 in
    fwd.hpp | version.hpp) echo detail ;;
    agentbus.hpp) echo umbrella ;;
    */*) echo "${1%%/*}" ;;
    *) echo "?" ;;
  esac
}

declare -A edges=()
bad=0
while IFS= read -r header; do
  from=$(module_of "$header")
  if [[ $from != umbrella && -z ${rank[$from]:-} ]]; then
    echo "check_layers: $header is in module '$from', which is not in the order (scripts/check_layers.sh)" >&2
    bad=1
    continue
  fi
  while IFS= read -r inc; do
    to=$(module_of "$inc")
    edges["$from $to"]=$((${edges["$from $to"]:-0} + 1))
    [[ $from == umbrella ]] && continue
    if [[ -z ${rank[$to]:-} ]]; then
      echo "check_layers: $header includes $inc, in unknown module '$to'" >&2
      bad=1
    elif ((rank[$to] > rank[$from])); then
      echo "check_layers: $header ($from) includes agentbus/$inc ($to): $to comes after $from in the order" >&2
      bad=1
    fi
  done < <(sed -n 's/^#include ["<]agentbus\/\([^">]*\)[">].*/\1/p' "$header")
done < <(find . -name '*.hpp' | sed 's#^\./##' | sort)

if [[ ${1:-} == --table ]]; then
  cols=("${order[@]}")
  printf '%-10s' "includes→"
  for c in "${cols[@]}"; do printf '%10s' "$c"; done
  echo
  for r in "${order[@]}" umbrella; do
    printf '%-10s' "$r"
    for c in "${cols[@]}"; do
      n=${edges["$r $c"]:-}
      printf '%10s' "${n:-.}"
    done
    echo
  done
fi

if ((bad)); then
  echo "check_layers: the order is: ${order[*]}" >&2
  exit 1
fi
echo "layers: every include follows the order (${order[*]})"
