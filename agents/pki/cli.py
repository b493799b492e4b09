"""kairn-certs: create and renew kairn's CAs and certificates (the chart's PKI hook)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from agents.common.logs import LineLogger

from .model import KINDS, Desired
from .plan import STEPS
from .run import PlanError, run
from .store import Conflict, DirSecretStore, KubeSecretStore

log = LineLogger("kairn-certs")
LEVELS = LineLogger.LEVELS


def _env(name: str, default=None):
    return os.environ.get(f"KAIRN_{name}", default)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kairn-certs",
        description="Create the cluster and clients CAs and the per-pod certificates of a kairn "
        "release in Secrets, and renew them before they expire. Every option falls back to the "
        "environment variable shown.",
    )
    arg = p.add_argument
    arg("--fullname", default=_env("FULLNAME"), help="release fullname [KAIRN_FULLNAME]")
    arg("--namespace", default=_env("NAMESPACE"), help="namespace [KAIRN_NAMESPACE]")
    arg(
        "--cluster-domain",
        default=_env("CLUSTER_DOMAIN", "cluster.local"),
        help="[KAIRN_CLUSTER_DOMAIN] (default cluster.local)",
    )
    for name, dflt, what in (
        ("zookeeper-replicas", 3, "ZooKeeper pods"),
        ("kafka-replicas", 3, "Kafka brokers"),
        ("controller-replicas", 0, "KRaft controllers (0 in ZooKeeper mode)"),
        ("cert-validity-days", Desired.validity_days, "leaf certificate validity"),
        ("cert-renewal-days", Desired.renewal_days, "renew leaves expiring within this many days"),
        ("ca-validity-days", Desired.ca_validity_days, "validity of a new CA"),
    ):
        env = "KAIRN_" + name.upper().replace("-", "_")
        arg(
            f"--{name}",
            type=int,
            default=os.environ.get(env, str(dflt)),  # argparse converts it, or says why not
            help=f"{what} [{env}] (default {dflt})",
        )
    arg(
        "--extra-san",
        action="append",
        default=_list("EXTRA_SANS"),
        help="extra DNS name or IP for broker certificates, repeatable [KAIRN_EXTRA_SANS, "
        "comma-separated]",
    )
    for step, what in (
        ("renew", "re-sign the CA certificate with its key (e.g. when it is about to expire)"),
        ("replace", "start replacing the CA with a new key: the new CA becomes trusted"),
        ("promote", "second replacement step: the new CA signs, leaves are re-issued"),
        ("drop", "last replacement step: stop trusting the old CA"),
    ):
        flag = "drop-old-ca" if step == "drop" else f"{step}-ca"
        env = "KAIRN_" + flag.upper().replace("-", "_")
        arg(
            f"--{flag}",
            action="append",
            choices=KINDS,
            default=_list(env[6:]),
            metavar="cluster|clients",
            help=f"{what} [{env}]",
        )
    arg(
        "--out-dir",
        type=Path,
        default=_env("CERTS_OUT_DIR"),
        help="no Kubernetes: read and write the Secrets as files DIR/<secret>/<key> "
        "[KAIRN_CERTS_OUT_DIR]",
    )
    arg(
        "--cluster",
        default=_env("CLUSTER"),
        help="release name, set as label kairn.dev/cluster on written Secrets [KAIRN_CLUSTER]",
    )
    arg(
        "--kraft-cluster-id-from",
        default=_env("KRAFT_CLUSTER_ID_FROM", "new"),
        choices=("new", "zookeeper"),
        help="new: create the KRaft cluster Secret with a new cluster id when missing; "
        "zookeeper (during the migration): leave its creation to the preflight hook, which "
        "takes ZooKeeper's /cluster/id [KAIRN_KRAFT_CLUSTER_ID_FROM] (default new)",
    )
    arg(
        "--log-level",
        default=(_env("LOG_LEVEL") or "info").lower(),
        choices=sorted(LEVELS),
        help="[KAIRN_LOG_LEVEL] (default info)",
    )
    arg("--dry-run", action="store_true", help="print what would be done, write nothing")
    arg(
        "--now",
        default=_env("CERTS_NOW"),
        help="act as if it were this ISO-8601 time, to see renewal happen [KAIRN_CERTS_NOW]",
    )
    return p


def _list(name: str) -> list[str]:
    return [v.strip() for v in (_env(name) or "").split(",") if v.strip()]


def _steps(args) -> dict[str, str]:
    steps: dict[str, str] = {}
    for step in STEPS:
        for kind in getattr(args, "drop_old_ca" if step == "drop" else f"{step}_ca"):
            if kind not in KINDS:  # argparse checks choices on the command line, not env values
                raise PlanError(f"--{step}: {kind!r} is not one of {', '.join(KINDS)}")
            if steps.get(kind, step) != step:
                raise PlanError(f"one CA step per run: {kind} has --{steps[kind]} and --{step}")
            steps[kind] = step
    return steps


def _one_line(e: Exception) -> str:
    """A Kubernetes API error as `status reason: message` (its str() spans many lines and
    carries response headers); anything else as its first line."""
    status, body = getattr(e, "status", None), getattr(e, "body", None)
    if status is not None:
        try:
            message = json.loads(body or "{}").get("message", "")
        except ValueError:
            message = ""
        return f"Kubernetes API: {status} {getattr(e, 'reason', '')}: {message}".rstrip(": ")
    first = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {first}"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    log.set_level(args.log_level)
    try:
        if not args.fullname:
            raise PlanError("--fullname (KAIRN_FULLNAME) is required")
        if not args.namespace and not args.out_dir:
            raise PlanError("--namespace (KAIRN_NAMESPACE) is required")
        now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
        if now.tzinfo is None:
            raise PlanError(f"--now {args.now!r} needs a time zone, e.g. Z")
        desired = Desired(
            fullname=args.fullname,
            namespace=args.namespace or "default",
            zookeeper_replicas=args.zookeeper_replicas,
            kafka_replicas=args.kafka_replicas,
            cluster_domain=args.cluster_domain,
            validity_days=args.cert_validity_days,
            renewal_days=args.cert_renewal_days,
            ca_validity_days=args.ca_validity_days,
            kafka_extra_sans=tuple(args.extra_san),
            controller_replicas=args.controller_replicas,
            kraft_cluster_from_zookeeper=args.kraft_cluster_id_from == "zookeeper",
            release=args.cluster or "",
        )
        if min(desired.zookeeper_replicas, desired.kafka_replicas, args.controller_replicas) < 0:
            raise PlanError("replicas cannot be negative")
        if min(desired.validity_days, desired.ca_validity_days, desired.renewal_days) < 1:
            raise PlanError("validity and renewal days must be at least 1")
        if desired.renewal_days >= desired.validity_days:
            raise PlanError("--cert-renewal-days must be shorter than --cert-validity-days")
        if args.out_dir:
            store, pods = DirSecretStore(args.out_dir), None
        else:
            store = KubeSecretStore(desired.namespace)
            pods = store.pod_names
        plan, written = run(store, desired, now, _steps(args), args.dry_run, log, pods)
    except (PlanError, Conflict, ValueError) as e:
        log("failed", level="error", reason=str(e))
        print(f"kairn-certs: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # an API or config failure: one line, no traceback with data in it
        reason = _one_line(e)
        log("failed", level="error", reason=reason)
        print(f"kairn-certs: {reason}", file=sys.stderr)
        return 1
    log("done", actions=len(plan.actions), written=sorted(written), dry_run=args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
