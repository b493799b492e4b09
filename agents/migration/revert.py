"""The rollback to zookeeper (ops.html's revert table, row "Enter Migration Mode on the
brokers"), a base of `hooks.Hooks`: ZooKeeper cleaned for a broker to be its controller again,
the brokers rolled back, and the partition-epoch stall of a revert after kraft-brokers."""

from __future__ import annotations

from dataclasses import replace

from agents.roller.model import CONTROLLER, KAFKA
from agents.roller.run import RollError

from . import MigrationError, signals

# how long the revert waits for a broker to take /controller before rolling without one
ZK_ELECTION_WAIT = 60.0
# how long the revert's roll waits for a restarted broker to be back in its ISRs before it looks
# for a leader that keeps it out (signals.stale_leaders)
REVERT_SYNC_WAIT = 120.0


class Revert:
    """Needs of the host class: cfg, p, kafka, zk, znodes, s, log, sleep, clock, wait(),
    _brokers(), _roller()."""

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
        claims = self.p.delete_claims(CONTROLLER, self.cfg.controller_replicas)
        self.log("controller claims deleted", step="revert", claims=claims)
        self._raise_controller_epoch(migration)
        if signals.delete_controller_znode(ctl):
            self.znodes.delete("/controller")
            self.log("/controller deleted (a KRaft controller's claim)", step="revert")
        self._await_zk_controller()
        self._revert_roll()
        self.wait(
            "/controller to name a broker (a ZooKeeper controller again)",
            lambda: signals.zk_controller_missing(
                signals.parse_controller(self.znodes.read("/controller"))
            ),
        )
        self.znodes.delete("/migration")
        self.log("/migration deleted", step="revert")

    def _raise_controller_epoch(self, migration: bytes | None) -> None:
        """Before /controller is freed (no controller can write /controller_epoch meanwhile)."""
        z = self.znodes.read_many("/controller_epoch", "/controller")
        epoch = signals.controller_epoch_to_write(
            z["/controller_epoch"], migration, z["/controller"]
        )
        if epoch is None:
            return
        self.znodes.write("/controller_epoch", str(epoch).encode())
        self.log(
            "/controller_epoch raised to the KRaft controllers' epoch (KAFKA-20488): the next "
            "ZooKeeper controller is elected above it",
            step="revert",
            was=(z["/controller_epoch"] or b"").decode(errors="replace"),
            epoch=epoch,
        )

    def _revert_roll(self) -> None:
        """The brokers back to ZooKeeper mode, one at a time as every roll. A broker not rolled
        yet may lead partitions with a partition epoch from the KRaft controllers ahead of
        ZooKeeper's: it skips the ZooKeeper controller's requests and its ISR changes are
        refused, so a rolled-back follower never rejoins (docs/migration.md). Such a leader is
        restarted out of turn (for a moment below min.insync.replicas on those partitions),
        then the roll goes on."""
        settings = replace(self.s, pod_timeout=min(self.s.pod_timeout, REVERT_SYNC_WAIT))
        for _ in range(self._brokers()):
            try:
                self._roller(settings=settings).roll()
                return
            except RollError as e:
                leaders = self._stale_leaders()
                if not leaders:
                    raise
                self._restart_out_of_turn(leaders[0], e.reason)
        self._roller().roll()

    def _stale_leaders(self) -> list[int]:
        rev = self.p.update_revision(KAFKA)
        rolled = {p.ordinal for p in self.p.pods(KAFKA) if p.revision == rev}
        return signals.stale_leaders(self.kafka.view().partitions, rolled)

    def _restart_out_of_turn(self, broker: int, reason: str) -> None:
        pod = next(p for p in self.p.pods(KAFKA) if p.ordinal == broker)
        rev = self.p.update_revision(KAFKA)
        self.log(
            "a leader not rolled back yet keeps a rolled-back broker out of its ISRs (partition "
            "epoch ahead of ZooKeeper's): restarting it out of turn",
            level="warning",
            step="revert",
            pod=pod.name,
            stalled=reason,
        )
        self.p.event(
            KAFKA,
            "Restarting",
            f"kairn-roller restarts {pod.name} out of turn: its partitions refuse a rolled-back "
            "follower (partition epoch ahead of ZooKeeper's)",
        )
        self.p.delete_pod(KAFKA, pod)
        self.wait(
            f"{pod.name} back on the rolled-back settings",
            lambda: signals.pod_back_missing(
                pod, next((p for p in self.p.pods(KAFKA) if p.name == pod.name), None), rev
            ),
        )

    def _await_zk_controller(self) -> None:
        """Kafka 3.9's migrating brokers elect a ZooKeeper controller as soon as /controller is
        free; then every broker's controlled shutdown in the roll moves its leaderships. Where
        none is elected (ops.html: not until a broker restarts without the flag), the roll
        goes on as ops.html does and its first restart has no controller."""
        n = self._brokers()
        try:
            self.wait(
                "a broker elected ZooKeeper controller, named by every broker",
                lambda: signals.brokers_follow_zk_controller_missing(
                    signals.parse_controller(self.znodes.read("/controller")),
                    self.kafka.controllers_named(),
                    n,
                ),
                timeout=min(ZK_ELECTION_WAIT, self.s.pod_timeout),
            )
        except MigrationError as e:
            self.log(
                "no ZooKeeper controller before the roll: the first broker restarts without one",
                level="warning",
                step="revert",
                reason=str(e),
            )
