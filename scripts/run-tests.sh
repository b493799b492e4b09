#!/usr/bin/env bash
# Runs the test tiers one after another. A tier fails the run when its runner fails or when it
# ran no test at all (pytest's exit code 5 is a failure here, never a success).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.tools/bin:$root/.venv/bin:$PATH"
which=${1:-all}
failed=()

pytest_tier() {  # name, then pytest arguments
  local name=$1; shift
  echo "=== tier: $name"
  # the slowest tests in each tier's log, so a run shows where its time goes
  .venv/bin/pytest --durations=12 --durations-min=5 "$@"
  local rc=$?
  case $rc in
    0) ;;
    5) echo "tier $name ran no test: that is a failure"; failed+=("$name") ;;
    *) failed+=("$name") ;;
  esac
}

# Tiers, fastest first (but devtools: the test support code is checked before the tiers that
# rely on it). Each tier's folder holds its pytest tests; the chart tier also runs
# helm-unittest on chart/tests (see tests/chart/).
case $which in
  unit|all) pytest_tier unit tests/unit ;;&
  devtools|all) pytest_tier devtools tests/devtools ;;&
  chart|all) [ -d tests/chart ] && pytest_tier chart tests/chart ;;&
  image|all)  # the image is built first when its inputs changed (a second or less otherwise)
    if scripts/image-build.sh; then pytest_tier image tests/image; else failed+=(image); fi ;;&
  integration|all) pytest_tier integration tests/integration ;;&
  e2e|all) [ -d tests/e2e ] && pytest_tier e2e tests/e2e ;;&
  *) ;;
esac

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED tiers: ${failed[*]}"
  exit 1
fi
echo "all tiers passed ($which)"
