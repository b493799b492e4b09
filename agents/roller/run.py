"""The preflight check and the roll: loops over the adapters, every decision from `plan`.

A `Platform` is where the pods live (Kubernetes, or the local process harness): it lists a
StatefulSet's pods, deletes one, posts an Event. `Kafka` and `ZooKeeper` are the adapters in
`kafka` and `zk`. The roll restarts one pod at a time and stops at the first pod that does not
come back or may not go, restarting nothing further.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from . import plan
from .model import KAFKA, ZOOKEEPER, KafkaView, PodInfo, Restart, ZkNode


class Platform(Protocol):
    def deployed(self, component: str) -> bool: ...
    def pods(self, component: str) -> list[PodInfo]: ...
    def update_revision(self, component: str) -> str: ...
    def replicas(self, component: str) -> int: ...
    def delete_pod(self, component: str, pod: PodInfo) -> None: ...
    def event(self, component: str, reason: str, message: str, warning: bool = False) -> None: ...
    def cert_renewed(self, component: str, pods: list[PodInfo]) -> set[str]: ...
    def config_only(self, component: str, revision: str, update_revision: str) -> bool: ...
    def desired_broker_config(self, broker: int) -> dict[str, str] | None: ...


class KafkaPort(Protocol):
    def view(self, with_partitions: bool = True) -> KafkaView: ...
    def broker_config(self, broker: int) -> dict[str, str | None]: ...
    def alter_broker_config(self, broker: int, values: dict[str, str]) -> None: ...


class ZooKeeperPort(Protocol):
    def status(self) -> list[ZkNode]: ...


class RollError(Exception):
    """The roll stopped: ``pod`` (may be None) and why."""

    def __init__(self, pod: str | None, reason: str):
        super().__init__(f"{pod}: {reason}" if pod else reason)
        self.pod, self.reason = pod, reason


@dataclass
class Settings:
    pod_timeout: float = 300.0  # a restarted pod back and in sync, or a blocked pod allowed
    roll_all: bool = False
    poll: float = 1.0  # between checks while waiting for a pod
    default_min_isr: int = 1
    metadata_version: int | None = None  # KRaft: the feature level asked for (None: leave it)


Log = Callable[..., None]


class Roller:
    def __init__(
        self,
        platform: Platform,
        kafka: KafkaPort,
        zookeeper: ZooKeeperPort | None,
        settings: Settings,
        log: Log,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.p, self.kafka, self.zk, self.s = platform, kafka, zookeeper, settings
        self.log, self.sleep, self.clock = log, sleep, clock
        self.restarted: list[str] = []
        self.reconfigured: list[str] = []
        self.components: dict[str, str] = {}  # pod name -> component, for Events

    def component_of(self, pod: str | None) -> str:
        return self.components.get(pod or "", KAFKA)

    # ---- preflight --------------------------------------------------------------------------
    def preflight(self) -> list[str]:
        """Every reason the cluster is not healthy enough for an upgrade; empty when it is."""
        problems: list[str] = []
        replicas = {}
        for comp in (ZOOKEEPER, KAFKA):
            replicas[comp] = self.p.replicas(comp)
            problems += plan.pod_problems(comp, self.p.pods(comp), replicas[comp])
        problems += plan.zookeeper_problems(self.zk.status(), replicas[ZOOKEEPER])
        try:
            problems += plan.kafka_problems(self.kafka.view(), replicas[KAFKA])
        except Exception as e:
            problems.append(f"Kafka is not reachable: {_short(e)}")
        if self.s.metadata_version is not None:
            problems.append("metadata.version can only be set in KRaft mode")
        return problems

    # ---- roll -------------------------------------------------------------------------------
    def roll(self) -> dict:
        started = self.clock()
        self._roll_zookeeper()
        self._roll_kafka()
        summary = {
            "restarted": self.restarted,
            "reconfigured": self.reconfigured,
            "seconds": round(self.clock() - started, 1),
        }
        self.log("roll done", step="done", **summary)
        return summary

    def _pending(self, comp: str) -> tuple[str, dict[str, Restart]]:
        rev = self.p.update_revision(comp)
        pods = self.p.pods(comp)
        renewed = self.p.cert_renewed(comp, pods)
        todo = plan.restarts(pods, rev, renewed, self.s.roll_all)
        self.components.update({p.name: comp for p in pods})
        self.log(
            f"{comp}: {len(todo)} of {len(pods)} pods to restart",
            step="plan",
            component=comp,
            update_revision=rev,
            pods={r.pod.name: r.reason for r in todo},
        )
        return rev, {r.pod.name: r for r in todo}

    @staticmethod
    def _refresh(pending: dict[str, Restart], pods: list[PodInfo]) -> list[Restart]:
        by_name = {p.name: p for p in pods}
        return [Restart(by_name[n], r.reason) for n, r in pending.items() if n in by_name]

    # ZooKeeper: followers one at a time, the leader last; each back as a synced follower.
    def _roll_zookeeper(self) -> None:
        rev, pending = self._pending(ZOOKEEPER)
        replicas = self.p.replicas(ZOOKEEPER)
        while pending:
            nodes = {n.ordinal: n for n in self.zk.status()}
            current = self._refresh(pending, self.p.pods(ZOOKEEPER))
            if not current:
                break
            r = plan.zookeeper_order(current, nodes)[0]
            if plan.recovering(r.pod):
                self._wait_recovering(ZOOKEEPER, r.pod, replicas, rev)
                continue  # decide again with what it is now
            pending.pop(r.pod.name)
            self._wait_allowed(
                r.pod, lambda r=r: plan.zk_blockers(r.pod.ordinal, self.zk.status(), replicas)
            )
            self._restart(ZOOKEEPER, r, leader=nodes.get(r.pod.ordinal, ZkNode(0, None)).mode)
            self._wait_up(ZOOKEEPER, r.pod, replicas, rev)

    # Kafka: brokers that are not the controller first, the controller last (re-read each time).
    def _roll_kafka(self) -> None:
        rev, pending = self._pending(KAFKA)
        replicas = self.p.replicas(KAFKA)
        self._reconfigure(pending, rev)
        while pending:
            current = self._refresh(pending, self.p.pods(KAFKA))
            if not current:
                break
            controller = self._controller()
            r = plan.kafka_next(current, controller)
            assert r is not None
            if plan.recovering(r.pod):
                self._wait_recovering(KAFKA, r.pod, replicas, rev)
                continue  # decide again with what it is now
            pending.pop(r.pod.name)
            if r.pod.running:  # a crashed broker is restarted without waiting: it cannot hurt
                self._wait_allowed(r.pod, lambda r=r: self._kafka_blockers(r.pod.ordinal))
            self._restart(KAFKA, r, controller=r.pod.ordinal == controller)
            self._wait_up(KAFKA, r.pod, replicas, rev)

    def _controller(self) -> int | None:
        try:
            return self.kafka.view(with_partitions=False).controller
        except Exception as e:
            self.log("controller unknown", level="warning", error=_short(e))
            return None

    def _kafka_blockers(self, broker: int) -> list[str]:
        view = self.kafka.view()
        return plan.availability_blockers(
            broker, view.partitions, view.min_isr, self.s.default_min_isr, view.unreadable
        )

    def _wait_recovering(self, comp: str, pod: PodInfo, replicas: int, rev: str) -> None:
        self.log(
            "pod is up but not Ready (maybe recovering its logs): waiting, not restarting it",
            step="wait-recovering",
            component=comp,
            pod=pod.name,
        )
        self._wait_up(comp, pod, replicas, rev, fresh=False)

    # Only dynamic broker configs changed: alter-configs on each broker, restart nothing.
    def _reconfigure(self, pending: dict[str, Restart], rev: str) -> None:
        if self.s.roll_all:
            return
        for name, r in list(pending.items()):
            if not r.reason.startswith("revision") or not r.pod.ready:
                continue
            if not self.p.config_only(KAFKA, r.pod.revision, rev):
                continue
            desired = self.p.desired_broker_config(r.pod.ordinal)
            if desired is None:
                continue
            broker = r.pod.ordinal
            diff = plan.config_diff(self.kafka.broker_config(broker), desired)
            if not diff.dynamic_only:
                self.log(
                    "static configs changed: restart",
                    step="config",
                    pod=name,
                    static=list(diff.static),
                )
                continue
            if diff.set:
                self.kafka.alter_broker_config(broker, diff.set)
                self._wait(
                    name,
                    lambda b=broker, d=diff: _applied(self.kafka.broker_config(b), d.set),
                    "the new dynamic configs to be in effect",
                )
            self.log(
                "only dynamic configs changed: applied without a restart"
                if diff.set
                else "no effective configuration change: no restart",
                step="reconfigure",
                pod=name,
                configs=diff.set,
                not_compared=list(diff.unknown),
            )
            self.p.event(
                KAFKA, "Reconfigured", f"{name}: applied {sorted(diff.set)} without a restart"
            )
            self.reconfigured.append(name)
            pending.pop(name)

    # ---- one pod ----------------------------------------------------------------------------
    def _wait_allowed(self, pod: PodInfo, blockers: Callable[[], list[str]]) -> None:
        deadline = self.clock() + self.s.pod_timeout
        delays = plan.backoff()
        while True:
            try:
                why = blockers()
            except Exception as e:
                why = [f"cannot check: {_short(e)}"]
            if not why:
                return
            if self.clock() >= deadline:
                raise RollError(pod.name, "may not restart: " + "; ".join(why))
            delay = next(delays)
            self.log("blocked", step="blocked", pod=pod.name, why=why, retry_in=delay)
            self.sleep(delay)

    def _restart(self, comp: str, r: Restart, **extra) -> None:
        self.log(
            "restarting", step="restart", component=comp, pod=r.pod.name, reason=r.reason, **extra
        )
        self.p.event(comp, "Restarting", f"kairn-roller restarts {r.pod.name}: {r.reason}")
        self.p.delete_pod(comp, r.pod)
        self.restarted.append(r.pod.name)

    def _wait_up(self, comp: str, old: PodInfo, replicas: int, rev: str, fresh=True) -> None:
        """Until the pod is back: a new pod (new UID) on ``rev`` when ``fresh``, Ready, and
        serving: a synced quorum member, or a registered broker with its partitions in sync."""
        started = self.clock()

        def missing() -> str | None:
            pod = next((p for p in self.p.pods(comp) if p.name == old.name), None)
            if pod is None:
                return "pod not recreated yet"
            if fresh and pod.uid == old.uid:
                return "old pod still there"
            if fresh and pod.revision != rev and not self.s.roll_all:
                return f"pod on revision {pod.revision}, not {rev}"
            if not pod.ready:
                return "pod not Ready" + ("" if pod.running else " (containers not running)")
            return self._not_serving(comp, old, replicas)

        self._wait(old.name, missing, "the pod to be back and in sync", negate=True)
        self.log(
            "pod back",
            step="back",
            component=comp,
            pod=old.name,
            seconds=round(self.clock() - started, 1),
        )

    def _not_serving(self, comp: str, old: PodInfo, replicas: int) -> str | None:
        """What the restarted, Ready pod still lacks to count as back: a synced quorum member,
        or a registered, unfenced broker with its partitions in sync."""
        if comp == ZOOKEEPER:
            problems = plan.zookeeper_problems(self.zk.status(), replicas)
            return "; ".join(problems) or None
        view = self.kafka.view()
        if old.ordinal not in view.brokers:
            return f"broker {old.ordinal} not registered"
        if old.ordinal in view.fenced:
            return f"broker {old.ordinal} is fenced"
        if view.unreadable:
            return "; ".join(plan.unreadable_problems(view.unreadable))
        behind = plan.out_of_sync(old.ordinal, view.partitions)
        if behind:
            return f"{len(behind)} partitions not in sync yet: {', '.join(behind[:5])}"
        return None

    def _wait(self, pod: str, check: Callable, what: str, negate: bool = False) -> None:
        """Poll ``check`` (truthy = done; with ``negate``, a string = what is missing)."""
        deadline = self.clock() + self.s.pod_timeout
        last = None
        while True:
            try:
                result = check()
                done = result is None if negate else bool(result)
                last = result if negate else None
            except Exception as e:
                done, last = False, f"cannot check: {_short(e)}"
            if done:
                return
            if self.clock() >= deadline:
                detail = f" ({last})" if last else ""
                raise RollError(
                    pod, f"timed out after {self.s.pod_timeout:.0f}s waiting for {what}{detail}"
                )
            self.sleep(self.s.poll)


def _applied(current: dict[str, str | None], wanted: dict[str, str]) -> bool:
    return all((current.get(k) or "").strip() == v.strip() for k, v in wanted.items())


def _short(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}"[:300]
