#!/usr/bin/env bash
# Every linter, all of them run even when one fails; the exit status says whether any failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.tools/bin:$root/.venv/bin:$PATH"
failed=()
check() { local name=$1; shift; echo "=== $name"; "$@" || failed+=("$name"); }

check "ruff check" ruff check agents devtools tests bench scripts chart/files
check "ruff format" ruff format --check agents devtools tests bench scripts chart/files
check yamllint yamllint -s -c .yamllint.yaml .
check "helm lint (Helm 3)" helm lint --strict chart
check "helm lint (Helm 4)" helm4 lint --strict chart
check hadolint hadolint Dockerfile

if [ ${#failed[@]} -gt 0 ]; then echo "lint failed: ${failed[*]}"; exit 1; fi
echo "lint clean"
