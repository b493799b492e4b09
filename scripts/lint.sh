#!/usr/bin/env bash
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.tools/bin:$root/.venv/bin:$PATH"
ruff check agents devtools tests bench
ruff format --check agents devtools tests bench
yamllint -s -c .yamllint.yaml .
