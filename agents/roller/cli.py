"""kairn-roller: `preflight` (the pre-upgrade gate) and `roll` (the post-upgrade restarts)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from agents.common.logs import LineLogger
from agents.scaling import cli as scaling

from . import metadata_version, quorum
from .kafka import Kafka
from .kraft_roll import KRaftRoller
from .model import CONTROLLER, KAFKA, KRAFT, ZOOKEEPER
from .run import Roller, RollError, Settings
from .zk import TlsFiles, ZooKeeper, parse_nodes

log = LineLogger("kairn-roller")
LEVELS = LineLogger.LEVELS


def _env(name: str, default=None):
    return os.environ.get(f"KAIRN_{name}", default)


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("", "0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not true or false")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kairn-roller",
        description="kairn's upgrade hooks. `preflight` exits non-zero, one line per problem, "
        "unless every pod is Ready, every broker registered, no partition under-replicated or "
        "offline, a controller elected and ZooKeeper has a leader with all followers synced. "
        "`roll` restarts the pods whose revision is not their StatefulSet's updateRevision (or "
        "whose certificates were renewed): ZooKeeper followers, then the leader; brokers that "
        "are not the controller, then the controller; never below min.insync.replicas. In KRaft "
        "mode (seen from the cluster: a controller StatefulSet, brokers answering as KRaft "
        "brokers) preflight checks the metadata quorum instead of ZooKeeper, and `roll` "
        "restarts controllers first (followers, then the quorum leader, each while every other "
        "voter is caught up), then brokers, then applies --metadata-version. Every "
        "option falls back to the environment variable shown.",
    )
    arg = p.add_argument
    arg("--namespace", default=_env("NAMESPACE"), help="[KAIRN_NAMESPACE]")
    arg("--fullname", default=_env("FULLNAME"), help="release fullname [KAIRN_FULLNAME]")
    arg(
        "--kafka-statefulset",
        default=_env("KAFKA_STATEFULSET"),
        help="[KAIRN_KAFKA_STATEFULSET] (default <fullname>-kafka)",
    )
    arg(
        "--zookeeper-statefulset",
        default=_env("ZOOKEEPER_STATEFULSET"),
        help="[KAIRN_ZOOKEEPER_STATEFULSET] (default <fullname>-zookeeper)",
    )
    arg(
        "--controller-statefulset",
        default=_env("CONTROLLER_STATEFULSET"),
        help="the KRaft controllers' StatefulSet; set in KRaft mode [KAIRN_CONTROLLER_STATEFULSET]",
    )
    arg(
        "--metadata-version",
        default=_env("METADATA_VERSION", ""),
        help="KRaft: the metadata.version to finalize after the roll (a feature level, a "
        "version like 4.4-IV2 or a release like 4.4; empty: leave it) [KAIRN_METADATA_VERSION]",
    )
    arg(
        "--zookeeper-nodes",
        default=_env("ZOOKEEPER_NODES"),
        help="host:port of every ZooKeeper node in ordinal order, comma-separated, mutual TLS "
        "[KAIRN_ZOOKEEPER_NODES]",
    )
    arg("--bootstrap", default=_env("BOOTSTRAP"), help="Kafka TLS bootstrap [KAIRN_BOOTSTRAP]")
    arg("--tls-ca-file", default=_env("TLS_CA_FILE"), help="[KAIRN_TLS_CA_FILE]")
    arg("--tls-cert-file", default=_env("TLS_CERT_FILE"), help="[KAIRN_TLS_CERT_FILE]")
    arg("--tls-key-file", default=_env("TLS_KEY_FILE"), help="[KAIRN_TLS_KEY_FILE]")
    arg(
        "--tls-check-hostname",
        type=_bool,
        default=_env("TLS_CHECK_HOSTNAME", "true"),
        help="verify server host names [KAIRN_TLS_CHECK_HOSTNAME] (default true)",
    )
    arg(
        "--pod-timeout",
        type=float,
        default=_env("POD_TIMEOUT_SECONDS", "300"),
        help="seconds a pod may take to come back in sync, or stay blocked, before the roll "
        "stops [KAIRN_POD_TIMEOUT_SECONDS] (default 300)",
    )
    # the migration's hooks (agents/migration; chart: one kafka.metadata.mode per upgrade)
    arg(
        "--metadata-mode",
        default=_env("METADATA_MODE", ""),
        help="the rendering's kafka.metadata.mode: zookeeper, migration, kraft-brokers, kraft; "
        "empty: tell the mode from the cluster as before [KAIRN_METADATA_MODE]",
    )
    arg("--release", default=_env("CLUSTER", ""), help="Helm release name [KAIRN_CLUSTER]")
    arg(
        "--controller-replicas",
        type=int,
        default=_env("CONTROLLER_REPLICAS", "3"),
        help="[KAIRN_CONTROLLER_REPLICAS] (default 3)",
    )
    arg(
        "--controller-metrics",
        default=_env("CONTROLLER_METRICS", ""),
        help="host:port of every controller's /metrics in ordinal order [KAIRN_CONTROLLER_METRICS]",
    )
    arg(
        "--kraft-cluster-secret",
        default=_env("KRAFT_CLUSTER_SECRET", ""),
        help="[KAIRN_KRAFT_CLUSTER_SECRET] (default <fullname>-kraft-cluster)",
    )
    arg("--kafka-version", default=_env("KAFKA_VERSION", ""), help="[KAIRN_KAFKA_VERSION]")
    arg("--ibp", default=_env("IBP", ""), help="rendered IBP [KAIRN_IBP]")
    arg(
        "--log-level",
        default=(_env("LOG_LEVEL") or "info").lower(),
        choices=sorted(LEVELS),
        help="[KAIRN_LOG_LEVEL] (default info)",
    )
    sub = p.add_subparsers(dest="command", metavar="preflight|roll|rebalance")
    sub.required = True
    pre = sub.add_parser("preflight", help="refuse an upgrade of an unhealthy cluster")
    pre.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="N",
        help="retry for up to N seconds before failing (default 0)",
    )
    roll = sub.add_parser("roll", help="restart outdated pods in a controller-aware order")
    roll.add_argument(
        "--all",
        dest="all_pods",
        action="store_true",
        default=_bool(_env("ROLL_ALL", "false")),
        help="restart every pod, not only outdated ones [KAIRN_ROLL_ALL]",
    )
    scaling.add_commands(sub)
    return p


class ConfigError(Exception):
    pass


def _adapters(args, platform=None, log_fn=log):
    platform, kafka, tls = _base(args, platform, log_fn)
    mode = _mode(platform, kafka)
    if mode == KRAFT:
        return platform, kafka, None, mode
    if not args.zookeeper_nodes:
        raise ConfigError("--zookeeper-nodes (KAIRN_ZOOKEEPER_NODES) is required")
    return platform, kafka, ZooKeeper(parse_nodes(args.zookeeper_nodes), tls), mode


def _base(args, platform=None, log_fn=log):
    for flag in ("bootstrap", "tls_ca_file", "tls_cert_file", "tls_key_file"):
        if not getattr(args, flag):
            env = "KAIRN_" + flag.upper()
            raise ConfigError(f"--{flag.replace('_', '-')} ({env}) is required")
    tls = TlsFiles(args.tls_ca_file, args.tls_cert_file, args.tls_key_file, args.tls_check_hostname)
    for f in (tls.ca, tls.cert, tls.key):
        if not os.path.isfile(f):
            raise ConfigError(f"TLS file {f} does not exist")
    kafka = Kafka(args.bootstrap, tls)
    if platform is None:
        if not args.namespace:
            raise ConfigError("--namespace (KAIRN_NAMESPACE) is required")
        if not args.fullname and not (args.kafka_statefulset and args.zookeeper_statefulset):
            raise ConfigError("--fullname (KAIRN_FULLNAME) is required")
        from .kube import KubePlatform

        statefulsets = {
            KAFKA: args.kafka_statefulset or f"{args.fullname}-kafka",
            ZOOKEEPER: args.zookeeper_statefulset or f"{args.fullname}-zookeeper",
        }
        if args.controller_statefulset:
            statefulsets[CONTROLLER] = args.controller_statefulset
        elif args.metadata_mode and args.fullname:
            # a rollback to zookeeper renders no controllers: their leftovers are still named
            statefulsets[CONTROLLER] = f"{args.fullname}-controller"
        platform = KubePlatform(args.namespace, statefulsets, args.fullname or "", log=log_fn)
    return platform, kafka, tls


def _migration(args, platform, kafka, tls, settings, sleep) -> int | None:
    """The migration's preflight or roll (agents/migration/hooks.py); None: not a migration
    phase, today's hook runs."""
    from agents.migration import hooks, observe, phases

    try:
        requested = phases.parse_phase(args.metadata_mode)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if not args.zookeeper_nodes:
        raise ConfigError("--zookeeper-nodes (KAIRN_ZOOKEEPER_NODES) is required")
    nodes = parse_nodes(args.zookeeper_nodes)
    addresses = observe.parse_addresses(args.controller_metrics)
    cfg = hooks.Config(
        requested=requested,
        release=args.release,
        controller_replicas=args.controller_replicas,
        kraft_secret=args.kraft_cluster_secret or f"{args.fullname}-kraft-cluster",
        kafka_version=args.kafka_version or None,
        ibp=args.ibp or None,
        metrics=tuple(addresses),
        kafka_replicas=int(_env("KAFKA_REPLICAS")) if _env("KAFKA_REPLICAS") else None,
        fullname=args.fullname or "",
        zookeeper_statefulset=args.zookeeper_statefulset or f"{args.fullname}-zookeeper",
    )
    h = hooks.Hooks(
        cfg,
        platform,
        kafka,
        ZooKeeper(nodes, tls),
        observe.Znodes(nodes, tls),
        observe.ControllerMetrics(addresses) if addresses else None,
        settings,
        log,
        sleep=sleep,
    )
    return hooks.run(args.command, h, getattr(args, "wait", 0))


def _mode(platform, kafka) -> str:
    """The metadata mode from the cluster itself (never from a flag a user can get wrong): a
    controller StatefulSet, and the brokers' ApiVersions; refused when they disagree."""
    try:
        kafka_kraft = kafka.kraft()
    except Exception as e:
        log("metadata mode: Kafka not reachable", level="warning", error=_one_line(e))
        kafka_kraft = None
    mode, problems = quorum.metadata_mode(platform.deployed(CONTROLLER), kafka_kraft)
    if problems:
        raise RuntimeError("; ".join(problems))
    log("metadata mode", mode=mode, level="debug")
    return mode


def _one_line(e: Exception) -> str:
    status, body = getattr(e, "status", None), getattr(e, "body", None)
    if status is not None and body is not None:
        try:
            message = json.loads(body or "{}").get("message", "")
        except ValueError:
            message = ""
        return f"Kubernetes API: {status} {getattr(e, 'reason', '')}: {message}".rstrip(": ")
    first = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {first}"


def main(argv: list[str] | None = None, platform=None, sleep=time.sleep) -> int:
    """Exit status: 0 done, 1 refused or failed (one line on stderr says why), 2 bad usage."""
    args = parser().parse_args(argv)
    log.set_level(args.log_level)
    kafka = None
    try:
        if args.pod_timeout <= 0:
            raise ConfigError("--pod-timeout must be positive")
        try:
            wanted = metadata_version.resolve(args.metadata_version)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        settings = Settings(pod_timeout=args.pod_timeout, metadata_version=wanted)
        if args.metadata_mode and args.command in ("preflight", "roll"):
            platform, kafka, _ = _base(args, platform)
            settings.roll_all = getattr(args, "all_pods", False)
            code = _migration(args, platform, kafka, kafka.tls, settings, sleep)
            if code is not None:
                return code
            settings.roll_all = False
            kafka.close()  # today's hook builds its own
        platform, kafka, zk, mode = _adapters(args, platform)
        kind = KRaftRoller if mode == KRAFT else Roller
        if args.command == "preflight":  # then the scale-in guard (agents/scaling)
            code = _preflight(kind(platform, kafka, zk, settings, log), args.wait, sleep)
            return code or scaling.scale_in(args, platform, log, sleep=sleep)
        if args.command == "rebalance":
            return scaling.rebalance(args, platform, log, sleep=sleep)
        settings.roll_all = args.all_pods
        roller = kind(platform, kafka, zk, settings, log, sleep=sleep)
        try:
            roller.roll()
        except RollError as e:
            log(
                "roll stopped",
                level="error",
                pod=e.pod,
                reason=e.reason,
                restarted=roller.restarted,
            )
            platform.event(
                roller.component_of(e.pod),
                "RollFailed",
                f"kairn-roller stopped at {e.pod}: {e.reason}",
                warning=True,
            )
            print(
                f"kairn-roller: roll stopped at {e.pod or 'start'}: {e.reason}; restarted "
                f"before: {', '.join(roller.restarted) or 'none'}",
                file=sys.stderr,
            )
            return 1
        return 0
    except ConfigError as e:
        log("failed", level="error", reason=str(e))
        print(f"kairn-roller: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        reason = _one_line(e)
        log("failed", level="error", reason=reason)
        print(f"kairn-roller: {reason}", file=sys.stderr)
        return 1
    finally:
        if kafka is not None:
            kafka.close()


def _preflight(roller: Roller, wait: float, sleep) -> int:
    deadline = time.monotonic() + max(wait, 0)
    attempt = 0
    while True:
        attempt += 1
        problems = roller.preflight()
        if not problems:
            log("preflight passed", step="preflight", attempt=attempt)
            return 0
        if time.monotonic() >= deadline:
            break
        log("preflight: not healthy yet", step="preflight", attempt=attempt, problems=problems)
        sleep(min(5.0, max(0.1, deadline - time.monotonic())))
    log("preflight failed", level="error", step="preflight", problems=problems)
    for line in problems:
        print(f"kairn-roller: preflight: {line}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
