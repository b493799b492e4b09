"""The scaling parts of kairn-roller: the scale-in guard (and drain) that `preflight` runs once
the cluster is healthy, and the `rebalance` command of the post-upgrade hook after a
scale-out. Settings come from the environment the chart's hooks set:

- ``KAIRN_KAFKA_REPLICAS``: the broker count of the values being applied (unset: no guard);
- ``KAIRN_SCALE_IN_DRAIN``: empty the brokers that go instead of refusing (default false);
- ``KAIRN_REBALANCE_BROKERS``: the new brokers, the only ones that receive replicas (unset:
  every broker, a full levelling);
- ``KAIRN_REBALANCE_THROTTLE_BYTES``, ``KAIRN_REBALANCE_BATCH_SIZE``,
  ``KAIRN_REBALANCE_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import os
import sys
import time

from agents.common.settings import DEFAULT_THROTTLE_BYTES

from .kafka import ScalingKafka
from .run import Rebalancer, ScalingError, Settings

KAFKA = "kafka"  # the roller's name of the brokers' StatefulSet


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"KAIRN_{name}")
    return default if value in (None, "") else value


def _truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def settings() -> Settings:
    return Settings(
        throttle_bytes=int(_env("REBALANCE_THROTTLE_BYTES", str(DEFAULT_THROTTLE_BYTES))),
        batch_size=int(_env("REBALANCE_BATCH_SIZE", "10")),
        timeout=float(_env("REBALANCE_TIMEOUT_SECONDS", "3600")),
    )


def add_commands(sub) -> None:
    r = sub.add_parser(
        "rebalance",
        help="after a scale-out: move replicas and preferred leaders onto the new brokers "
        "(KAIRN_REBALANCE_BROKERS), throttled, one batch at a time, resumable",
    )
    r.add_argument(
        "--requests",
        action="store_true",
        help="serve the release's `kairn.dev/type: rebalance` ConfigMaps instead: show each "
        'plan, run it once approved (kairn.dev/approve: "true")',
    )
    r.add_argument("--once", action="store_true", help="with --requests: one pass, then exit")
    r.add_argument(
        "--interval",
        type=float,
        default=float(_env("REBALANCE_REQUESTS_INTERVAL_SECONDS", "10")),
        help="with --requests: seconds between passes [KAIRN_REBALANCE_REQUESTS_INTERVAL_SECONDS]",
    )


def kafka_for(args) -> ScalingKafka:
    def factory():
        from kafka import KafkaAdminClient

        return KafkaAdminClient(
            bootstrap_servers=args.bootstrap.split(","),
            security_protocol="SSL",
            ssl_cafile=args.tls_ca_file,
            ssl_certfile=args.tls_cert_file,
            ssl_keyfile=args.tls_key_file,
            ssl_check_hostname=args.tls_check_hostname,
            request_timeout_ms=30000,
            client_id="kairn-rebalancer",
        )

    return ScalingKafka(factory)


def record_for(args, suffix: str = "rebalance"):
    from .kube import ConfigMapRecord

    return ConfigMapRecord(
        args.namespace,
        f"{args.fullname}-{suffix}",
        {"app.kubernetes.io/part-of": "kairn", "app.kubernetes.io/component": "rebalance"},
    )


def scale_in(args, platform, log, kafka=None, record=None, sleep=time.sleep) -> int:
    """Preflight's second half: 0 when the values' broker count removes no broker that holds
    a replica (after draining them, with the drain value), else 1 with one line per reason."""
    count = _env("KAFKA_REPLICAS")
    if count is None:
        return 0
    drain = _truthy(_env("SCALE_IN_DRAIN"))
    kafka = kafka or kafka_for(args)
    try:
        rebalancer = Rebalancer(kafka, record or record_for(args), settings(), log, sleep)
        try:
            problems = rebalancer.scale_in(int(count), drain)
        except ScalingError as e:
            problems = [f"drain stopped: {e}"]
        if problems:
            log("scale-in refused", level="error", step="scale-in", problems=problems)
            platform.event(KAFKA, "ScaleInRefused", "; ".join(problems), warning=True)
            for line in problems:
                print(f"kairn-roller: preflight: {line}", file=sys.stderr)
            return 1
        if rebalancer.batches:
            platform.event(
                KAFKA,
                "BrokersDrained",
                f"moved {rebalancer.partitions} partition(s) off the brokers from {count} on",
            )
        return 0
    finally:
        kafka.close()


def rebalance(args, platform, log, kafka=None, record=None, sleep=time.sleep) -> int:
    """The post-upgrade rebalance: waits for the values' brokers to register, then levels
    replicas and leaders onto the new ones. With ``--requests``: :func:`serve_requests`."""
    if getattr(args, "requests", False):
        return serve_requests(args, log, kafka=kafka, record=record, sleep=sleep)
    into_env = _env("REBALANCE_BROKERS")
    into = [int(b) for b in into_env.split(",") if b.strip()] if into_env else None
    count = int(_env("KAFKA_REPLICAS", "0"))
    kafka = kafka or kafka_for(args)
    try:
        deadline = time.monotonic() + args.pod_timeout
        while True:
            try:
                registered = set(kafka.snapshot().brokers)
            except Exception as e:  # a broker may still be starting
                registered, why = set(), str(e)
            else:
                why = f"registered: {sorted(registered)}"
            if set(range(count)) <= registered and set(into or ()) <= registered:
                break
            if time.monotonic() >= deadline:
                raise ScalingError(f"brokers 0..{count - 1} not all registered ({why})")
            sleep(2)
        summary = Rebalancer(kafka, record or record_for(args), settings(), log, sleep).run(
            into=into
        )
        platform.event(
            KAFKA,
            "Rebalanced",
            f"moved {summary['partitions']} partition(s), {summary['replicas_copied']} "
            f"replica(s) copied, in {summary['batches']} batch(es)",
        )
        return 0
    except ScalingError as e:
        log("rebalance stopped", level="error", step="rebalance", reason=str(e))
        platform.event(KAFKA, "RebalanceFailed", f"kairn-roller rebalance: {e}", warning=True)
        print(f"kairn-roller: rebalance stopped: {e}", file=sys.stderr)
        return 1
    finally:
        kafka.close()


def serve_requests(args, log, kafka=None, record=None, configmaps=None, sleep=time.sleep) -> int:
    """Passes over the rebalance ConfigMaps (agents/scaling/requests.py) until killed, or
    one with ``--once``. Between passes it watches them for ``--interval`` seconds, so an
    approval is acted on at once; a pass that fails (the API or Kafka away) is logged and
    the next one tries again. Its record is ``<fullname>-rebalance-requests``, apart from the
    hooks' ``<fullname>-rebalance``, so that each resumes only its own batch after a kill."""
    from .requests import handle

    if configmaps is None:
        from .kube import RebalanceConfigMaps

        configmaps = RebalanceConfigMaps(args.namespace, _env("CLUSTER") or args.fullname)
    kafka = kafka or kafka_for(args)
    record = record or record_for(args, "rebalance-requests")
    config = settings()
    wait = getattr(configmaps, "wait", None)
    try:
        while True:
            try:
                found = configmaps.list()
            except Exception as e:  # the API server away: the next pass tries again
                log("rebalance requests not listed", level="warning", error=_one_line(e))
                found = []
            for cm in found:
                _serve_one(cm, handle, kafka, record, config, configmaps, log, sleep)
            if args.once:
                return 0
            if wait is None:
                sleep(args.interval)
                continue
            try:
                wait(args.interval)
            except Exception as e:
                log("rebalance requests not watched", level="warning", error=_one_line(e))
                sleep(args.interval)
    finally:
        kafka.close()


def _serve_one(cm, handle, kafka, record, config, configmaps, log, sleep) -> None:
    name = cm["metadata"]["name"]
    try:
        outcome = handle(
            cm,
            kafka.snapshot,
            kafka.ongoing,
            lambda: Rebalancer(kafka, record, config, log, sleep),
            config.throttle_bytes,
        )
    except Exception as e:  # Kafka away: the next pass tries again
        log("rebalance request not handled", level="warning", name=name, error=_one_line(e))
        return
    if outcome is None:
        return
    log(
        "rebalance request",
        name=name,
        state=outcome.state,
        reason=outcome.reason,
        message=outcome.message,
    )
    try:
        configmaps.report(cm, outcome, approved_done=outcome.state != "Pending")
    except Exception as e:  # a run that is not reported is shown (or, done, skipped) next pass
        log("rebalance request not reported", level="warning", name=name, error=_one_line(e))


def _one_line(e: Exception) -> str:
    status = getattr(e, "status", None)
    if status is not None and getattr(e, "reason", None) is not None:
        return f"Kubernetes API: {status} {e.reason}"
    first = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {first}"
