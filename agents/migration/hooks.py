"""The migration's side of `kairn-roller preflight` and `kairn-roller roll` (issue 20; the
contract is docs of the chart's hook env: KAIRN_METADATA_MODE and friends).

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

from agents.pki import kraft as pki_kraft
from agents.pki.model import MANAGED_BY
from agents.roller import plan
from agents.roller.kraft_roll import KRaftRoller
from agents.roller.model import CONTROLLER, KAFKA, ZOOKEEPER
from agents.roller.run import Roller, RollError, Settings, _short

from . import phases, signals
from .phases import KRAFT, KRAFT_BROKERS, MIGRATION
from .phases import ZOOKEEPER as ZK_PHASE

IBP = "inter.broker.protocol.version"
NO_BROKER_CONTROLLER = "no active Kafka controller"


@dataclass(frozen=True)
class Config:
    requested: str
    release: str
    controller_replicas: int
    kraft_secret: str
    kafka_version: str | None = None
    ibp: str | None = None
    metrics: tuple[str, ...] = ()


class MigrationError(Exception):
    pass


class Hooks:
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

    def wait(self, what: str, missing: Callable[[], str | None]) -> float:
        """Poll ``missing`` (None: done) until done or the pod timeout; the seconds taken."""
        started = self.clock()
        deadline = started + self.s.pod_timeout
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
                raise MigrationError(
                    f"timed out after {self.s.pod_timeout:.0f}s waiting for {what} ({last})"
                )
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

    # ---- preflight ----------------------------------------------------------------------------
    def preflight(self) -> list[str] | None:
        """The refusals of this upgrade (empty: it may go); None: today's preflight decides."""
        requested = self.cfg.requested
        current = self._current()
        if not signals.preflight_is_migration(current, requested):
            if requested == ZK_PHASE and not self.p.deployed(CONTROLLER):
                pending, _, _ = self._revert_pending()
                if pending:  # a rollback's roll was interrupted: its rerun must get through
                    return self._revert_rerun_preflight()
            return None
        self.log(
            "preflight: metadata phase", step="preflight", current=current, requested=requested
        )
        t = phases.transition(current, requested)
        refusals: list[str] = []
        if (
            t.accepted
            and not self.cfg.metrics
            and (requested in phases.DUAL or current in phases.DUAL)
        ):
            refusals.append(
                f"phase {current} -> {requested} refused: the migration phases read the "
                "controllers' metrics (ZkMigrationState); set metrics.jmx.enabled=true"
            )
        obs = self.observe(current) if t.accepted else phases.ObservedState(0)
        refusals += phases.preflight(current, requested, obs)
        if not refusals and (current, requested) == (ZK_PHASE, MIGRATION):
            refusals += self.ensure_kraft_secret()
        return refusals

    def _revert_rerun_preflight(self) -> list[str]:
        # the brokers still carrying the migration flag elect no ZooKeeper controller until one
        # restarts without it (apache/kafka#15287): "no controller" is the state being repaired
        problems = Roller(self.p, self.kafka, self.zk, self.s, self.log).preflight()
        self.log("preflight: completing a rollback to zookeeper", step="preflight")
        return [p for p in problems if p != NO_BROKER_CONTROLLER]

    def observe(self, current: str) -> phases.ObservedState:
        """What the guards need; brokers' modes approximated (signals.broker_mode)."""
        expected = self.p.replicas(KAFKA)
        pods = self.p.pods(KAFKA)
        rev = self.p.update_revision(KAFKA)
        problems = plan.pod_problems(KAFKA, pods, expected)
        if self.p.deployed(ZOOKEEPER):
            zr = self.p.replicas(ZOOKEEPER)
            problems += plan.pod_problems(ZOOKEEPER, self.p.pods(ZOOKEEPER), zr)
            problems += plan.zookeeper_problems(self.zk.status(), zr)
        q = None
        if self.p.deployed(CONTROLLER):
            cr = self.p.replicas(CONTROLLER)
            problems += plan.pod_problems(CONTROLLER, self.p.pods(CONTROLLER), cr)
            if self.metrics is not None:
                q = self.quorum()
                problems += [f"controllers: {p}" for p in q.problems]
        registered, fenced, offline, under, ibp_running, mv_running = (), (), (), (), None, None
        try:
            view = self.kafka.view()
        except Exception as e:
            problems.append(f"Kafka is not reachable: {_short(e)}")
        else:
            registered, fenced = view.brokers, view.fenced
            if found := signals.brokers_registered_missing(expected, registered, fenced):
                problems.append(found)
            if current == ZK_PHASE and (view.controller is None or view.controller < 0):
                problems.append(NO_BROKER_CONTROLLER)
            problems += plan.unreadable_problems(view.unreadable)
            offline = tuple(p.name for p in view.partitions if p.leader < 0)
            under = tuple(
                p.name for p in view.partitions if p.leader >= 0 and len(p.isr) < len(p.replicas)
            )
            if current in (ZK_PHASE, MIGRATION) and view.brokers:
                try:
                    ibp_running = self._ibp(min(view.brokers))
                except Exception as e:
                    problems.append(f"{IBP} not readable: {_short(e)}")
        if current in (KRAFT_BROKERS, KRAFT):
            try:
                level = self.kafka.features().finalized
                mv_running = None if level is None else str(level)
            except Exception as e:
                problems.append(f"metadata.version not readable: {_short(e)}")
        migrating = q.migrating if q else None
        brokers = []
        for p in pods:
            mode = signals.broker_mode(current, p.running, p.revision, rev)
            brokers.append(
                phases.BrokerState(
                    p.ordinal,
                    mode,
                    signals.broker_registered(mode, p.ordinal, registered, migrating, expected),
                    p.ordinal in fenced,
                )
            )
        mv = self.s.metadata_version
        return phases.ObservedState(
            expected_brokers=expected,
            brokers=tuple(brokers),
            zk_migration_state=q.zk_state if q else None,
            migrating_zk_brokers=migrating,
            kafka_version=self.cfg.kafka_version or None,
            ibp_running=ibp_running,
            ibp_requested=self.cfg.ibp or None,
            metadata_version_running=mv_running,
            metadata_version_requested=None if mv is None else str(mv),
            offline=offline,
            under_replicated=under,
            problems=tuple(problems),
        )

    def _ibp(self, broker: int) -> str | None:
        from .observe import broker_setting

        return broker_setting(self.kafka, broker, IBP)

    def ensure_kraft_secret(self) -> list[str]:
        """zookeeper -> migration: Secret <fullname>-kraft-cluster from ZooKeeper's /cluster/id
        (the controllers are formatted with it); kept when it already holds that id."""
        name = self.cfg.kraft_secret
        zk_id = signals.cluster_id(self.znodes.read("/cluster/id"))
        for _ in range(2):  # a second pass only after losing a creation race
            data = self.p.secret_data(name)
            have = (data or {}).get(pki_kraft.CLUSTER_ID, b"").decode() or None
            action, why = signals.kraft_secret(have, data is not None, zk_id)
            if action == signals.REFUSE:
                return [f"phase {ZK_PHASE} -> {MIGRATION} refused: Secret {name}: {why}"]
            if action == signals.KEEP:
                self.log("kraft-cluster Secret kept", step="preflight", secret=name, why=why)
                return []
            labels = {**MANAGED_BY, "kairn.dev/cluster": self.cfg.release}
            content = pki_kraft.cluster_data(self.cfg.controller_replicas, zk_id)
            if self.p.create_secret(name, content, labels):
                self.log(
                    "kraft-cluster Secret created with ZooKeeper's cluster id",
                    step="preflight",
                    secret=name,
                    controllers=self.cfg.controller_replicas,
                )
                return []
        return [f"phase {ZK_PHASE} -> {MIGRATION} refused: Secret {name} could not be created"]

    # ---- roll ---------------------------------------------------------------------------------
    def roll(self) -> bool:
        """The requested phase's roll; False: not the migration's (today's roll decides)."""
        requested = self.cfg.requested
        kind = signals.roll_kind(requested, self.p.deployed(ZOOKEEPER), self.p.deployed(CONTROLLER))
        started = self.clock()
        if kind == "maybe-revert":
            pending, migration, ctl = self._revert_pending()
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

    def _roller(self, kind=Roller) -> Roller:
        return kind(
            self.p, self.kafka, self.zk, self.s, self.log, sleep=self.sleep, clock=self.clock
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
        # brokers one at a time, min.insync.replicas kept; a KRaft controller's id (>= 100)
        # from Metadata matches no broker pod, so none is held back for last then
        self._roller()._roll_zookeeper()
        self._roller()._roll_kafka()
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
        selector = (
            f"app.kubernetes.io/instance={self.cfg.release},app.kubernetes.io/component=zookeeper"
        )
        deleted = self.p.delete_by_selector(selector)
        self.log("kept ZooKeeper objects deleted (claims kept)", step="finalize", deleted=deleted)
        self._roller(KRaftRoller).roll()  # as today: brokers, metadata.version, scale-in

    def revert(self, migration: bytes | None, ctl: signals.ControllerZnode) -> None:
        """Back to zookeeper (ops.html revert table, row "Enter Migration Mode"): the
        controllers gone with their claims, /controller freed, brokers rolled without the flag,
        a broker the ZooKeeper controller again; /migration deleted last, so a rerun after a
        kill anywhere finds the revert still pending and carries on."""
        self.wait(
            "the controller pods to be gone",
            lambda: (
                f"pods {left} still exist" if (left := self.p.leftover_pods(CONTROLLER)) else None
            ),
        )
        self.log(
            "/migration before the revert",
            step="revert",
            migration=(migration or b"").decode(errors="replace")[:500] or None,
        )
        claims = self.p.delete_claims(CONTROLLER)
        self.log("controller claims deleted", step="revert", claims=claims)
        if signals.delete_controller_znode(ctl):
            self.znodes.delete("/controller")
            self.log("/controller deleted (a KRaft controller's claim)", step="revert")
        self._roller().roll()
        self.wait(
            "/controller to name a broker (a ZooKeeper controller again)",
            lambda: signals.zk_controller_missing(
                signals.parse_controller(self.znodes.read("/controller"))
            ),
        )
        self.znodes.delete("/migration")
        self.log("/migration deleted", step="revert")


def run(command: str, hooks: Hooks, wait: float = 0) -> int | None:
    """`preflight` or `roll` of a migration phase; None: not one (today's hook runs)."""
    p, log = hooks.p, hooks.log
    try:
        if command == "preflight":
            return _preflight(hooks, wait)
        done = hooks.roll()
        return 0 if done else None
    except (MigrationError, RollError) as e:
        reason = e.reason if isinstance(e, RollError) else str(e)
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
