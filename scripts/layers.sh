#!/usr/bin/env bash
# layers.sh - the include graph of src/ (which folder includes which), checked
# against the one direction the layers may point (docs/architecture.md):
#   core <- ops <- backend <- model <- train <- api, mpi <- cli, with io a leaf on
#   core and data on io; model may use data (eval preprocessing, default crop).
# Prints "folder -> folders it includes" and exits 1 naming any include that
# points up or sideways.   bash scripts/layers.sh
set -u
cd "$(dirname "$0")/.."
ORDER=(core ops io data backend model train api mpi cli)
declare -A rank
for i in "${!ORDER[@]}"; do rank[${ORDER[$i]}]=$i; done
bad=0
for d in "${ORDER[@]}"; do
  [ -d "src/$d" ] || continue
  deps=$(grep -ho '#include "[a-z]*/' src/"$d"/*.[ch] 2>/dev/null | sed 's/#include "//; s/\///' | sort -u | grep -vx "$d")
  echo "$d -> $(echo $deps)"
  for t in $deps; do
    if [ -z "${rank[$t]:-}" ] || [ "${rank[$t]}" -ge "${rank[$d]}" ] || { [ "$d" = io ] && [ "$t" != core ]; }; then
      echo "layers: src/$d includes $t/ ($(grep -l "#include \"$t/" src/"$d"/*.[ch] | tr '\n' ' '))" >&2
      bad=1
    fi
  done
done
exit $bad
