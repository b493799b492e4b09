"""The preflight check and the roll in KRaft mode: the controllers first (followers one at a time,
the quorum leader last, each back as a caught-up voter before the next may go), then the brokers
with the ZooKeeper-mode availability rules (there is no active controller among the brokers), then
the metadata.version step when one is asked for. Every decision is in `quorum`, `plan` and
`metadata_version`; this module only loops over the adapters."""

from __future__ import annotations

from typing import Protocol

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
