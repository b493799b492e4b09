"""The migration's side of `kairn-roller preflight` and `kairn-roller roll`, chosen
when the chart sets KAIRN_METADATA_MODE (the rendering's kafka.metadata.mode).

`run` returns None when the hook is not the migration's (a zookeeper or kraft release staying
as it is, with nothing of a migration left): the caller then does today's preflight or roll.
Every decision is in `phases` and `signals`; this module reads, waits and acts.

State-driven: each run decides from what the cluster shows now, so a rerun of the same
`helm upgrade` after a failure (or a SIGKILL at any line) converges. Every wait is bounded by
the pod timeout, logs what it waited for and how long (`waited_for=`, `seconds=`), and fails
naming what it waited for and what was still missing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from agents.roller.kraft_roll import KRaftRoller
from agents.roller.model import CONTROLLER, KAFKA, ZOOKEEPER
from agents.roller.run import Roller, RollError, Settings, _short

from . import MigrationError, phases, signals
from .phases import MIGRATION
from .preflight import Preflight
from .revert import Revert


@dataclass(frozen=True)
class Config:
    requested: str
    release: str
    controller_replicas: int
    kraft_secret: str
    kafka_version: str | None = None
    ibp: str | None = None
    metrics: tuple[str, ...] = ()
    kafka_replicas: int | None = None  # the rendering's kafka.replicas (KAIRN_KAFKA_REPLICAS)
    fullname: str = ""
    zookeeper_statefulset: str = ""


class Hooks(Preflight, Revert):
    def __init__(
        self,
        cfg: Config,
        platform,
        kafka,
        zookeeper,
        znodes,
        metrics,
        settings: Settings,
        log: Callable[..., None],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg, self.p, self.kafka, self.zk, self.znodes = cfg, platform, kafka, zookeeper, znodes
        self.metrics, self.s, self.log, self.sleep, self.clock = (
            metrics,
            settings,
            log,
            sleep,
            clock,
        )

    # ---- shared -------------------------------------------------------------------------------
    def quorum(self) -> signals.QuorumSignals:
        if self.metrics is None:
            raise MigrationError(
                "the controllers' metrics are not configured (KAIRN_CONTROLLER_METRICS is "
                "empty): the migration phases need metrics.jmx.enabled=true"
            )
        return signals.summarize(self.metrics.read(), self.cfg.controller_replicas)

    def wait(
        self, what: str, missing: Callable[[], str | None], timeout: float | None = None
    ) -> float:
        """Poll ``missing`` (None: done) until done or ``timeout`` (the pod timeout); the
        seconds taken."""
        timeout = self.s.pod_timeout if timeout is None else timeout
        started = self.clock()
        deadline = started + timeout
        last = None
        self.log("waiting", step="wait", waited_for=what)
        while True:
            try:
                last = missing()
            except Exception as e:
                last = f"cannot check: {_short(e)}"
            if last is None:
                seconds = round(self.clock() - started, 1)
                self.log("waited", step="wait", waited_for=what, seconds=seconds)
                return seconds
            if self.clock() >= deadline:
                self.log(
                    "wait timed out",
                    level="error",
                    step="wait",
                    waited_for=what,
                    seconds=round(self.clock() - started, 1),
                    missing=last,
                )
                raise MigrationError(f"timed out after {timeout:.0f}s waiting for {what} ({last})")
            self.log("still waiting", level="debug", step="wait", waited_for=what, missing=last)
            self.sleep(self.s.poll)

    def _current(self) -> str:
        labels = self.p.labels(KAFKA) if hasattr(self.p, "labels") else None
        return signals.current_phase(
            (labels or {}).get(signals.PHASE_LABEL),
            self.p.deployed(CONTROLLER),
            self.p.deployed(ZOOKEEPER),
        )

    def _revert_pending(self) -> tuple[bool, bytes | None, signals.ControllerZnode]:
        z = self.znodes.read_many("/migration", "/controller")
        ctl = signals.parse_controller(z["/controller"])
        return signals.needs_revert(z["/migration"], ctl), z["/migration"], ctl

    def roll(self) -> bool:
        """The requested phase's roll; False: not the migration's (today's roll decides)."""
        requested = self.cfg.requested
        kind = signals.roll_kind(requested, self.p.deployed(ZOOKEEPER), self.p.deployed(CONTROLLER))
        started = self.clock()
        if kind == "maybe-revert":
            read: list = []
            self.wait(
                "ZooKeeper's /migration and /controller to be readable (a rollback to clean?)",
                lambda: read.append(self._revert_pending()),
            )
            pending, migration, ctl = read[-1]
            if not pending:
                return False
            self.revert(migration, ctl)
        elif kind == "migration":
            self.roll_dual(requested)
        elif kind == "finalize":
            self.finalize()
        else:
            return False
        seconds = round(self.clock() - started, 1)
        self.log("phase done", step="done", phase=requested, kind=kind, seconds=seconds)
        self.p.event(
            KAFKA, "MigrationPhase", f"kairn-roller: phase {requested} done in {seconds}s ({kind})"
        )
        return True

    def _roller(self, kind=Roller, settings: Settings | None = None) -> Roller:
        return kind(
            self.p,
            self.kafka,
            self.zk,
            settings or self.s,
            self.log,
            sleep=self.sleep,
            clock=self.clock,
        )

    def _controller_pods_ready(self) -> None:
        replicas = self.p.replicas(CONTROLLER)
        self.wait(
            "the controller pods to be Ready",
            lambda: signals.pods_missing(
                "controller", [(p.ordinal, p.ready) for p in self.p.pods(CONTROLLER)], replicas
            ),
        )

    def _brokers(self) -> int:
        return self.p.replicas(KAFKA)

    def roll_dual(self, requested: str) -> None:
        """migration (forward, or back from kraft-brokers) and kraft-brokers."""
        self._controller_pods_ready()
        self.wait(
            "the controllers' quorum (a leader, one active controller) and ZkMigrationState "
            "PRE_MIGRATION (2) or MIGRATION (1)",
            lambda: signals.migration_started_missing(self.quorum()),
        )
        outdated = [
            p.name
            for p in self.p.pods(CONTROLLER)
            if p.revision != self.p.update_revision(CONTROLLER)
        ]
        if outdated:  # their quorum is read from /metrics here; DescribeQuorum needs KRaft brokers
            self.log(
                "controllers on an older revision are not restarted in a dual-write phase",
                level="warning",
                pods=outdated,
            )
        # brokers one at a time, min.insync.replicas kept; a KRaft controller's id (>= 100)
        # from Metadata matches no broker pod, so none is held back for last then
        self._roller().roll()
        n = self._brokers()
        if requested == MIGRATION:
            self.wait(
                f"the metadata migrated: ZkMigrationState MIGRATION (1), MigratingZkBrokerCount "
                f"{n} and /migration naming the active controller",
                lambda: signals.migrated_missing(self.quorum(), n, self.znodes.read("/migration")),
            )
        else:
            self.wait(
                f"{n} brokers registered unfenced, MigratingZkBrokerCount 0, ZkMigrationState "
                "still MIGRATION (1)",
                lambda: self._kraft_brokers_missing(n),
            )

    def _kraft_brokers_missing(self, n: int) -> str | None:
        view = self.kafka.view(with_partitions=False)
        return signals.kraft_brokers_missing(self.quorum(), n, view.brokers, view.fenced)

    def finalize(self) -> None:
        """kraft while the kept ZooKeeper objects exist: the point of no return."""
        n = self._brokers()
        q = self.quorum()
        if q.zk_state != phases.ZK_POST_MIGRATION:
            self.wait(
                f"before finalizing: {n} brokers registered unfenced in KRaft mode, "
                "MigratingZkBrokerCount 0, ZkMigrationState MIGRATION (1)",
                lambda: self._kraft_brokers_missing(n),
            )
        else:
            self.log("already finalized (ZkMigrationState 3): finishing", step="finalize")
        kr = self._roller(KRaftRoller)
        kr._roll_controllers()  # followers, the quorum leader last; without the flag now
        self.wait(
            "ZkMigrationState POST_MIGRATION (3) on the active controller",
            lambda: signals.finalized_missing(self.quorum()),
        )
        if not self.cfg.fullname:
            raise MigrationError(
                "the release fullname (KAIRN_FULLNAME) is needed to name ZooKeeper"
            )
        objects = signals.zookeeper_objects(self.cfg.fullname, self.cfg.zookeeper_statefulset)
        deleted = self.p.delete_objects(objects)
        self.log("kept ZooKeeper objects deleted (claims kept)", step="finalize", deleted=deleted)
        self._roller(KRaftRoller).roll()  # as today: brokers, metadata.version, scale-in


def run(command: str, hooks: Hooks, wait: float = 0) -> int | None:
    """`preflight` or `roll` of a migration phase; None: not one (today's hook runs)."""
    p, log = hooks.p, hooks.log
    try:
        if command == "preflight":
            return _preflight(hooks, wait)
        done = hooks.roll()
        return 0 if done else None
    except Exception as e:
        if command == "preflight" and not isinstance(e, MigrationError):
            raise  # the caller prints it as every other preflight failure
        reason = (
            e.reason
            if isinstance(e, RollError)
            else str(e)
            if isinstance(e, MigrationError)
            else _short(e)
        )
        where = f" at {e.pod}" if isinstance(e, RollError) and e.pod else ""
        log("migration phase failed", level="error", phase=hooks.cfg.requested, reason=reason)
        p.event(
            KAFKA,
            "MigrationFailed",
            f"kairn-roller: phase {hooks.cfg.requested} stopped{where}: {reason}",
            warning=True,
        )
        print(
            f"kairn-roller: phase {hooks.cfg.requested} stopped{where}: {reason}; run the same "
            "helm upgrade again to carry on",
            file=sys.stderr,
        )
        return 1


def _preflight(hooks: Hooks, wait: float) -> int | None:
    deadline = hooks.clock() + max(wait, 0)
    while True:
        refusals = hooks.preflight()
        if refusals is None:
            return None
        if not refusals:
            hooks.log("preflight passed", step="preflight", phase=hooks.cfg.requested)
            return 0
        if hooks.clock() >= deadline:
            break
        hooks.log("preflight: not yet", step="preflight", refusals=refusals)
        hooks.sleep(min(5.0, max(0.1, deadline - hooks.clock())))
    hooks.log("preflight refused", level="error", step="preflight", refusals=refusals)
    hooks.p.event(KAFKA, "MigrationRefused", "; ".join(refusals), warning=True)
    for line in refusals:
        print(f"kairn-roller: preflight: {line}", file=sys.stderr)
    return 1
