#!/usr/bin/env bash
# promtool (checks and unit-tests the chart's alert rules) from Debian's prometheus package,
# unpacked into .tools/bin without installing the package: no daemon, service or user comes
# with it. Debian 12 ships Prometheus 2.42, which checks and unit-tests the chart's rules; a
# build of Prometheus 3 from source took minutes for the same checks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
mkdir -p "$bin"

# The upstream version is pinned; Debian's own revision (security updates, +deb12uN) is taken
# as the archive serves it, since the archive keeps only the newest revision.
PROMETHEUS_VERSION=2.42.0

stamp="$bin/.promtool.version"
if [ -x "$bin/promtool" ] && [[ "$(cat "$stamp" 2>/dev/null)" == "$PROMETHEUS_VERSION"+* ]]; then
  exit 0
fi

candidate() { apt-cache policy prometheus 2>/dev/null | sed -n 's/^ *Candidate: //p'; }
version=$(candidate)
if [[ "$version" != "$PROMETHEUS_VERSION"+* ]]; then
  # no package lists yet, or old ones
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  version=$(candidate)
fi
if [[ "$version" != "$PROMETHEUS_VERSION"+* ]]; then
  echo "setup-promtool: Debian offers prometheus '${version:-none}', not $PROMETHEUS_VERSION" >&2
  exit 1
fi

echo "unpacking promtool from Debian's prometheus $version"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# (the sandbox user _apt cannot write into a private temporary folder)
(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "prometheus=$version")
dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -xO ./usr/bin/promtool > "$tmp/promtool"
chmod 755 "$tmp/promtool"
"$tmp/promtool" --version 2>&1 | grep -q "version $PROMETHEUS_VERSION" || {
  echo "setup-promtool: the unpacked promtool is not $PROMETHEUS_VERSION" >&2; exit 1; }
mv "$tmp/promtool" "$bin/promtool"
echo "$version" > "$stamp"
