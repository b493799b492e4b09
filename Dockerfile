# kairn: one image for the entity agents, the upgrade hooks, the TLS sidecar (stunnel) and the
# Prometheus JMX exporter java agent that brokers and ZooKeeper load (/opt/kairn/jmx).
# Build from the repository root: docker build -t kairn/kairn:0.1.0 .  (`make image` builds it
# with podman; where no registry serves the python image it passes BASE_REPOSITORY of a
# stand-in with the same tag: scripts/setup-image.sh, scripts/image-build.sh)
ARG BASE_REPOSITORY=python

# ---- build: a wheel of the agents package and a virtualenv with the pinned runtime deps ----
FROM ${BASE_REPOSITORY}:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.txt constraints.txt ./
# Runtime dependencies only (requirements.txt also lists test tools); versions come from
# requirements.txt and every transitive package is pinned by constraints.txt.
RUN python -m venv /opt/kairn \
    && grep -E '^(kubernetes|kafka-python|prometheus-client|flask|waitress|cryptography|pyyaml|kazoo)==' \
       requirements.txt > runtime-requirements.txt \
    && /opt/kairn/bin/pip install --only-binary=:all: -r runtime-requirements.txt -c constraints.txt
COPY pyproject.toml ./
COPY agents ./agents
# The wheel is built with a pinned setuptools, which leaves the virtualenv again with pip.
RUN /opt/kairn/bin/pip install --only-binary=:all: setuptools==80.9.0 \
    && /opt/kairn/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/kairn/bin/pip install --no-deps /wheels/*.whl \
    && /opt/kairn/bin/pip uninstall --yes setuptools pip

# ---- jmx: the Prometheus JMX exporter java agent, resolved by Maven from tools/jmx/pom.xml (the
# pin `make setup` uses too). The chart copies it into Kafka and ZooKeeper pods with an init
# container, since the Kafka image lacks it. Maven and its JDK stay in this stage.
FROM ${BASE_REPOSITORY}:3.11.14-slim-bookworm AS jmx
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# the JDK's post-install step needs the man folder that slim images leave out
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends 'maven=3.8.7-1*' \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY tools/jmx/pom.xml ./
RUN mvn -q -B dependency:copy-dependencies -DoutputDirectory=/jmx -DincludeScope=runtime \
      -Dmdep.stripVersion=true \
    && test -f /jmx/jmx_prometheus_javaagent.jar

# ---- final: Python runtime, stunnel from Debian, the virtualenv; no compilers, no pip ----
FROM ${BASE_REPOSITORY}:3.11.14-slim-bookworm
# No HEALTHCHECK: the image runs several commands and Kubernetes probes each of them (the chart).
# checkov:skip=CKV_DOCKER_2: health is checked by Kubernetes probes per command, see the chart
LABEL org.opencontainers.image.title="kairn" \
      org.opencontainers.image.description="kairn entity agents, upgrade hooks, TLS sidecar and the JMX exporter agent for brokers" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/kairn/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Debian packages are pinned to their upstream version and Debian revision; the security
# suffix (+deb12uN) is left open because Debian's archive serves only the newest one, so an
# exact pin stops building at the next security update (no snapshot archive is reachable from
# where this is built). The versions each build got are in its SBOM (scripts/image-sbom.sh).
# stunnel4 needs a sysusers provider: the standalone one, or apt brings all of systemd.
RUN apt-get update \
    && apt-get install -y --no-install-recommends 'stunnel4=3:5.68-2+deb12u*' \
       'systemd-standalone-sysusers=252.*' \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 kairn \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin kairn
COPY --from=build /opt/kairn /opt/kairn
COPY --from=jmx /jmx/jmx_prometheus_javaagent.jar /opt/kairn/jmx/jmx_prometheus_javaagent.jar
USER 10001:10001
WORKDIR /tmp
# The chart always sets the command (kairn-topic-agent, kairn-user-agent, kairn-roller,
# kairn-certs or stunnel); by itself the image only shows what it carries.
CMD ["stunnel", "-version"]
