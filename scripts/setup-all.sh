#!/usr/bin/env bash
# `make setup`: every setup step, with the network-bound ones (Debian, PyPI, Maven) running
# beside the CPU-bound Go builds so that downloads overlap compiles. Steps in one chain run in
# order; chains run at the same time. Each step writes its output to .tools/logs/setup-STEP.log,
# then prints it (without Go's download lines) and one line with its time, so CI logs show
# where the time goes. A failing step's log is printed, the other chains are stopped and the
# run fails. Every step is idempotent, so a second run takes a second or two.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
logs=.tools/logs
mkdir -p "$logs"

CHAINS=(
  "go-tools kube"                  # Go builds: CPU-bound, one after the other on all cores
  "system promtool kafka kafka4 jmx image" # Debian packages, Maven (which Debian brings), podman and
                                   # the image's base (apt: one chain, one apt at a time)
  "python"                         # PyPI
  "checkov"                        # PyPI, a venv of its own
)

step() {  # step NAME: scripts/setup-NAME.sh, its log, one timing line
  local name=$1 log="$logs/setup-$1.log" start=$SECONDS rc=0 out
  "scripts/setup-$name.sh" > "$log" 2>&1 < /dev/null || rc=$?
  if [ "$rc" = 0 ]; then
    out=$(grep -v '^go: downloading ' "$log" | sed "s/^/  $name | /" || true)
    printf '%s%ssetup: %-9s ok in %ds\n' "$out" "${out:+$'\n'}" "$name" $((SECONDS - start))
  else
    out=$(tail -n 80 "$log" | sed "s/^/  $name | /")
    printf '%s\nsetup: %-9s FAILED (exit %d) after %ds, log: %s\n' "$out" "$name" "$rc" \
      $((SECONDS - start)) "$log"
  fi
  return "$rc"
}

chain() { local name; for name in "$@"; do step "$name" || return 1; done; }

# Each chain runs in a process group of its own (job control), so a failure, Ctrl-C or an
# early exit stops a whole chain, Go compilers and pip included.
set -m
declare -A running=()
stop_all() {
  local pid
  for pid in "${!running[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

start=$SECONDS
for c in "${CHAINS[@]}"; do
  # shellcheck disable=SC2086  # a chain is a list of step names
  chain $c &
  running[$!]=$c
done

failed=""
while [ ${#running[@]} -gt 0 ]; do
  rc=0
  wait -n -p finished "${!running[@]}" || rc=$?
  unset "running[$finished]"
  if [ "$rc" != 0 ] && [ -z "$failed" ]; then
    failed=yes
    stop_all
  fi
done
trap - EXIT
if [ -n "$failed" ]; then
  echo "setup: failed after $((SECONDS - start))s"
  exit 1
fi
echo "setup: everything in place in $((SECONDS - start))s"
