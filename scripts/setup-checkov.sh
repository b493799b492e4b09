#!/usr/bin/env bash
# checkov (security checks of the rendered manifests and the Dockerfile) in a venv of its own,
# because it pins many packages of its own. Every package is locked by tools/checkov-constraints.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.tools/checkov-venv"
CHECKOV_VERSION=3.3.30
stamp="$venv/.constraints.sha256"
# (checkov --version takes seconds to import everything: a stamp says what is installed)
want="$CHECKOV_VERSION $(sha256sum "$root/tools/checkov-constraints.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/checkov" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing checkov $CHECKOV_VERSION"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" \
    -c "$root/tools/checkov-constraints.txt"
  echo "$want" > "$stamp"
fi
