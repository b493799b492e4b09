"""The migration's preflight (the pre-upgrade gate of each phase change), a base of
`hooks.Hooks`: reads what `phases.preflight` needs into an ObservedState, and on
zookeeper -> migration writes Secret <fullname>-kraft-cluster from ZooKeeper's /cluster/id.

Brokers' modes are approximated from what is readable without asking each broker (see
`signals.broker_mode` and `signals.broker_registered`): the pod's revision against its
StatefulSet's, the StatefulSet's phase label, Metadata's registered brokers and the
controllers' MigratingZkBrokerCount."""

from __future__ import annotations

from agents.pki import kraft as pki_kraft
from agents.pki.model import MANAGED_BY
from agents.roller import plan
from agents.roller.model import CONTROLLER, KAFKA, ZOOKEEPER
from agents.roller.run import Roller, _short

from . import phases, signals
from .phases import KRAFT, KRAFT_BROKERS, MIGRATION
from .phases import ZOOKEEPER as ZK_PHASE

IBP = "inter.broker.protocol.version"
NO_BROKER_CONTROLLER = "no active Kafka controller"


class Preflight:
    """Needs of the host class: cfg, p, kafka, zk, znodes, metrics, s, log, quorum(),
    _current(), _revert_pending()."""

    def preflight(self) -> list[str] | None:
        """The refusals of this upgrade (empty: it may go); None: today's preflight decides."""
        requested = self.cfg.requested
        current = self._current()
        if not signals.preflight_is_migration(current, requested):
            if requested == ZK_PHASE and not self.p.deployed(CONTROLLER):
                try:
                    pending, _, _ = self._revert_pending()
                except Exception as e:  # today's preflight reports an unreachable ZooKeeper
                    self.log("znodes not readable", level="warning", error=_short(e))
                    return None
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
        if t.accepted and (
            found := signals.replicas_refusal(
                current, requested, self.p.replicas(KAFKA), self.cfg.kafka_replicas
            )
        ):
            refusals.append(found)
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
