#!/usr/bin/env bash
# Runs every benchmark in bench/ (or those named: scripts/run-bench.sh harness roll). Each prints
# its figures and writes JSON to bench/results/. Benchmarks compare within one run; they never
# assert a time.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.tools/bin:$root/.venv/bin:$PATH"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in bench/*.py; do
    n=$(basename "$f" .py)
    # helper modules of a benchmark start with an underscore or are imported by it
    case $n in __init__|_*|*_load) continue ;; esac
    names+=("$n")
  done
fi
failed=()
for n in "${names[@]}"; do
  echo "=== bench: $n"
  .venv/bin/python "bench/$n.py" || failed+=("$n")
done
[ ${#failed[@]} -eq 0 ] || { echo "benchmarks failed: ${failed[*]}"; exit 1; }
