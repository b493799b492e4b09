"""The preflight check and the roll in KRaft mode: the controllers first (followers one at a time,
the quorum leader last, each back as a caught-up voter before the next may go), then the brokers
with the ZooKeeper-mode availability rules (there is no active controller among the brokers), then
the metadata.version step when one is asked for, and last the removed brokers' registrations
dropped after a scale-in. Every decision is in `quorum`, `plan`, `metadata_version` and
`agents.scaling.unregister`; this module only loops over the adapters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from agents.scaling import unregister

from . import metadata_version as mv
from . import plan, quorum
from .model import CONTROLLER, KAFKA, Features, PodInfo, QuorumView
from .run import KafkaPort, Roller, RollError, _short


class QuorumPort(KafkaPort, Protocol):
    def quorum(self) -> QuorumView: ...
    def features(self) -> Features: ...
    def update_metadata_version(self, level: int, downgrade: bool, validate_only: bool) -> None: ...


class KRaftRoller(Roller):
    kafka: QuorumPort
    # UnregisterBroker by broker id; None: built from the Kafka adapter's bootstrap and TLS
    unregister_broker: Callable[[int], unregister.Answer] | None = None

    # ---- preflight --------------------------------------------------------------------------
    def preflight(self) -> list[str]:
        problems: list[str] = []
        replicas = {}
        for comp in (CONTROLLER, KAFKA):
            replicas[comp] = self.p.replicas(comp)
            problems += plan.pod_problems(comp, self.p.pods(comp), replicas[comp])
        try:
            problems += quorum.quorum_problems(self.kafka.quorum(), replicas[CONTROLLER])
        except Exception as e:
            problems.append(f"the metadata quorum is not readable: {_short(e)}")
        try:
            problems += plan.kafka_problems(self.kafka.view(), replicas[KAFKA], kraft=True)
        except Exception as e:
            problems.append(f"Kafka is not reachable: {_short(e)}")
        try:
            problems += self._metadata_version_problems(self.kafka.features())
        except Exception as e:
            problems.append(f"metadata.version is not readable: {_short(e)}")
        return problems

    def _metadata_version_problems(self, features: Features) -> list[str]:
        wanted = self.s.metadata_version
        todo = mv.step(wanted, features.finalized)
        refusal = None
        if todo is not None and wanted is not None:
            try:  # the controller checks every node's supported range, controllers included
                self.kafka.update_metadata_version(wanted, todo == "downgrade", validate_only=True)
            except Exception as e:
                refusal = str(e)
        return mv.problems(wanted, features, refusal)

    # ---- roll -------------------------------------------------------------------------------
    def roll(self) -> dict:
        started = self.clock()
        self._roll_controllers()
        self._roll_kafka()
        self._metadata_version_step()
        self._unregister_removed()
        summary = {
            "restarted": self.restarted,
            "reconfigured": self.reconfigured,
            "seconds": round(self.clock() - started, 1),
        }
        self.log("roll done", step="done", **summary)
        return summary

    def _leader(self) -> int | None:
        try:
            return self.kafka.quorum().leader
        except Exception as e:
            self.log("quorum leader unknown", level="warning", error=_short(e))
            return None

    # Controllers: followers one at a time, the leader last (re-read each time: it can move).
    def _roll_controllers(self) -> None:
        rev, pending = self._pending(CONTROLLER)
        replicas = self.p.replicas(CONTROLLER)
        while pending:
            current = self._refresh(pending, self.p.pods(CONTROLLER))
            if not current:
                break
            leader = self._leader()
            r = quorum.controller_next(current, leader)
            assert r is not None
            if plan.recovering(r.pod):
                self._wait_recovering(CONTROLLER, r.pod, replicas, rev)
                continue  # decide again with what it is now
            pending.pop(r.pod.name)
            if r.pod.running:  # a crashed controller is no voter now: restarting it costs none
                self._wait_allowed(
                    r.pod,
                    lambda r=r: quorum.controller_blockers(r.pod.ordinal, self.kafka.quorum()),
                )
            self._restart(
                CONTROLLER,
                r,
                node_id=quorum.node_id(r.pod.ordinal),
                leader=quorum.node_id(r.pod.ordinal) == leader,
            )
            self._wait_up(CONTROLLER, r.pod, replicas, rev)

    def _controller(self) -> int | None:
        return None  # KRaft brokers have no controller role: none of them is saved for last

    def _not_serving(self, comp: str, old: PodInfo, replicas: int) -> str | None:
        if comp == CONTROLLER:
            return quorum.rejoined(old.ordinal, self.kafka.quorum(), replicas)
        return super()._not_serving(comp, old, replicas)

    # metadata.version: raised (or safely lowered) only after every node was rolled.
    def _metadata_version_step(self) -> None:
        wanted = self.s.metadata_version
        if wanted is None:
            return
        read: list[Features] = []
        # the brokers were just restarted: a read may fail until the client's metadata caught up
        self._wait(
            "metadata.version",
            lambda: read.append(self.kafka.features()) or True,
            "metadata.version to be readable",
        )
        features = read[-1]
        todo = mv.step(wanted, features.finalized)
        if todo is None:
            self.log(
                "metadata.version already as asked",
                step="metadata-version",
                level_now=mv.describe(features.finalized),
            )
            return
        problems = self._metadata_version_problems(features)
        if problems:
            raise RollError(None, "; ".join(problems))
        self.log(
            f"metadata.version: {todo}",
            step="metadata-version",
            before=mv.describe(features.finalized),
            after=mv.describe(wanted),
        )
        self.kafka.update_metadata_version(wanted, todo == "downgrade", validate_only=False)
        # reads follow writes by a moment in KRaft mode: wait until the brokers serve it
        self._wait(
            "metadata.version",
            lambda: self.kafka.features().finalized == wanted,
            f"the brokers to report metadata.version {mv.describe(wanted)}",
        )
        self.p.event(
            KAFKA,
            "MetadataVersion",
            f"kairn-roller set metadata.version from {mv.describe(features.finalized)} to "
            f"{mv.describe(wanted)}",
        )

    # Removed brokers: after a scale-in their registrations stay, fenced, until unregistered.
    # Idempotent and safe to kill anywhere: each pass decides afresh from what Kafka and the
    # platform show, and an id Kafka no longer knows counts as done.
    def _unregister_removed(self) -> None:
        replicas = self.p.replicas(KAFKA)
        deadline = self.clock() + self.s.pod_timeout
        while True:
            try:
                view = self.kafka.view(with_partitions=False)
                pods = {p.ordinal for p in self.p.pods(KAFKA)}
            except Exception as e:  # the brokers were just rolled: the client may lag
                todo, why = unregister.Removed(), {-1: f"cannot check: {_short(e)}"}
            else:
                registered = {b: b in view.fenced for b in view.brokers}
                todo = unregister.removed(replicas, registered, pods)
                why = todo.waiting
            for broker in todo.unregister:
                self._unregister(broker)
            if not why:
                return
            if self.clock() >= deadline:
                # the roll itself is done: this is left to the next upgrade's roll, not failed
                message = "; ".join(why.values())
                self.log(
                    "removed brokers not unregistered",
                    level="warning",
                    step="unregister",
                    why=list(why.values()),
                )
                self.p.event(
                    KAFKA,
                    "BrokerUnregisterSkipped",
                    f"kairn-roller did not unregister removed brokers after "
                    f"{self.s.pod_timeout:.0f}s: {message}",
                    warning=True,
                )
                return
            self.log("waiting for removed brokers", step="unregister", why=list(why.values()))
            self.sleep(self.s.poll)

    def _unregister(self, broker: int) -> None:
        if self.unregister_broker is None:
            from .broker_unregister import BrokerUnregister

            self.unregister_broker = BrokerUnregister(self.kafka.bootstrap, self.kafka.tls)
        try:
            answer = self.unregister_broker(broker)
        except Exception as e:
            raise RollError(None, f"UnregisterBroker {broker}: {_short(e)}") from e
        if not unregister.done(answer):
            raise RollError(
                None,
                f"UnregisterBroker {broker}: error {answer.error_code}: {answer.error_message}",
            )
        self.log(
            "removed broker unregistered",
            step="unregister",
            broker=broker,
            already=answer.error_code != unregister.NONE,
        )
        self.p.event(
            KAFKA,
            "BrokerUnregistered",
            f"kairn-roller unregistered broker {broker}: its pod is gone after the scale-in",
        )
