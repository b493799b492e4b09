#!/usr/bin/env bash
# Debian packages: stunnel (the TLS sidecar) and openssl (certificate checks in tests).
set -euo pipefail
missing=()
command -v stunnel >/dev/null || missing+=(stunnel4)
command -v openssl >/dev/null || missing+=(openssl)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
