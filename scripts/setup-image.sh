#!/usr/bin/env bash
# What `make image` needs: podman (with buildah's build engine) and mmdebstrap from Debian, a
# containers.conf in .tools/containers that fits this kind of machine, a .tools/bin/podman
# wrapper that uses it, and the base image the Dockerfile builds on.
#
# The base: the Dockerfile's python:3.11.14-slim-bookworm when a registry serves it; otherwise
# a stand-in made here from Debian's own packages (python3 3.11 on bookworm, the same Debian
# release as the python image), imported as localhost/kairn/python-base with the python image's
# tag. The stand-in is rebuilt only when this script or the machine's CA store changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
conf_dir=.tools/containers
state=.tools/image
mkdir -p .tools/bin "$conf_dir" "$state"

# ---- Debian packages ---------------------------------------------------------------------
missing=()
for cmd in podman:podman buildah:buildah mmdebstrap:mmdebstrap runc:runc; do
  command -v "${cmd%%:*}" >/dev/null || [ -x "/usr/sbin/${cmd%%:*}" ] || missing+=("${cmd#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi

# ---- containers.conf and the podman wrapper ----------------------------------------------
# runc: crun refuses the hybrid (v1 + v2) cgroup layout of these machines. cgroupfs and a file
# for events: there is no systemd. Default ulimits within the hard limits root has here (podman
# would otherwise ask for more than the machine grants and every container fails to start).
nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
[ "$nofile" = unlimited ] || [ "$nofile" -ge 20000 ] && nofile=20000
[ "$nproc" = unlimited ] || [ "$nproc" -ge 32768 ] && nproc=32768
cat > "$conf_dir/containers.conf.new" <<EOF
# written by scripts/setup-image.sh
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
mv "$conf_dir/containers.conf.new" "$conf_dir/containers.conf"
cat > .tools/bin/podman.new <<EOF
#!/bin/sh
# podman with kairn's containers.conf (written by scripts/setup-image.sh)
CONTAINERS_CONF="$root/$conf_dir/containers.conf" exec /usr/bin/podman "\$@"
EOF
chmod 755 .tools/bin/podman.new
mv .tools/bin/podman.new .tools/bin/podman
podman=.tools/bin/podman
$podman version --format 'podman {{.Client.Version}}'

# ---- the SBOM tool -----------------------------------------------------------------------
# CycloneDX's cyclonedx-py, pinned with everything it imports, into a folder that
# scripts/image-sbom.sh mounts into the image (it reads the image's own virtualenv there).
SBOM_PINS=(cyclonedx-bom==7.5.0 cyclonedx-python-lib==11.12.0 arrow==1.4.0 attrs==26.1.0
  boolean.py==5.0 chardet==7.7.0 defusedxml==0.7.1 fqdn==1.6.0 idna==3.20 isoduration==20.11.0
  jsonpointer==3.12 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 lark==1.3.1
  license-expression==30.4.4 lxml==6.1.3 packageurl-python==0.17.6 packaging==26.4
  pip-requirements-parser==32.0.1 py-serializable==2.2.0 pyparsing==3.3.3
  python-dateutil==2.9.0.post0 referencing==0.37.0 rfc3339-validator==0.1.4
  rfc3986-validator==0.1.1 rfc3987-syntax==1.1.0 rpds-py==2026.9.1 six==1.17.0
  sortedcontainers==2.4.0 typing-extensions==4.16.0 tzdata==2026.6 uri-template==1.3.0
  webcolors==25.10.0)
sbom_tool=.tools/sbom
want=$(printf '%s\n' "${SBOM_PINS[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$sbom_tool/.pins" 2>/dev/null)" != "$want" ]; then
  rm -rf "$sbom_tool"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --no-deps --only-binary=:all: --python-version 3.11 --target "$sbom_tool" "${SBOM_PINS[@]}"
  echo "$want" > "$sbom_tool/.pins"
fi

# ---- the base ----------------------------------------------------------------------------
# .tools/image/base: the repository scripts/image-build.sh passes as BASE_REPOSITORY; the tag
# is the Dockerfile's own
tag=$(sed -n "s/^FROM \${BASE_REPOSITORY}:\([^ ]*\).*/\1/p" Dockerfile | head -n 1)
real=docker.io/library/python:$tag
standin=localhost/kairn/python-base:$tag
if $podman image exists "$real" || timeout 60 $podman pull --quiet "$real" >/dev/null 2>&1; then
  echo "base: $real"
  echo "${real%:*}" > "$state/base"
  exit 0
fi

# The stand-in's inputs: the rest of this script and the CA certificates added to this machine
# (outgoing TLS may be re-signed by a local CA; pip and Maven in the build must trust it).
extra_cas=(/usr/local/share/ca-certificates/*.crt)
[ -e "${extra_cas[0]}" ] || extra_cas=()
want=$( (sed -n '/^# ---- the base/,$p' "$0"; cat "${extra_cas[@]}") | sha256sum | cut -d' ' -f1)
if $podman image exists "$standin" \
  && [ "$($podman image inspect --format '{{index .Labels "kairn.base.inputs"}}' "$standin")" = "$want" ]; then
  echo "base: $standin (cached; $real cannot be pulled)"
  echo "${standin%:*}" > "$state/base"
  exit 0
fi

echo "base: $real cannot be pulled; making $standin with mmdebstrap"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/cas"
[ ${#extra_cas[@]} -eq 0 ] || cp "${extra_cas[@]}" "$tmp/cas/"
# Debian's container images (the python image's base) keep no package cache after apt runs...
cat > "$tmp/docker-clean" <<'CLEAN'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CLEAN
# ...and their slim variants install no documentation, manual pages or translations.
slim=()
for path in doc man info locale groff lintian; do
  slim+=(--dpkgopt="path-exclude=/usr/share/$path/*")
done
slim+=(--dpkgopt='path-include=/usr/share/doc/*/copyright')
# minbase + python3 and venv (what the python image offers the Dockerfile), the bookworm
# updates and security suites as in the python image's Debian base, and `python` on PATH.
# shellcheck disable=SC2016  # "$1" in a hook is mmdebstrap's: the root folder being made
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates "${slim[@]}" \
  --customize-hook="cp $tmp/docker-clean \"\$1/etc/apt/apt.conf.d/docker-clean\"" \
  --customize-hook="cp -r $tmp/cas/. \"\$1/usr/local/share/ca-certificates/\"" \
  --customize-hook='chroot "$1" update-ca-certificates' \
  --customize-hook='ln -sf /usr/bin/python3 "$1/usr/local/bin/python"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
  bookworm "$tmp/rootfs.tar" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"
$podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL kairn.base.inputs=$want" \
  --change 'CMD ["python3"]' \
  "$tmp/rootfs.tar" "$standin" >/dev/null
echo "${standin%:*}" > "$state/base"
echo "base: $standin made ($($podman image inspect --format '{{.Size}}' "$standin") bytes)"
