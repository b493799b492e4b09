"""The network side of the user agent's Kafka adapter: connections ("lanes"), the cluster's
metadata mode, where each request goes, requests fanned out over lanes, and Kafka's per-item
answers.

:class:`LaneClient` speaks through kafka-python's public network client,
``kafka.net.KafkaNetClient`` (``send_and_receive(node_id, request)``). Where a request goes
depends on the metadata mode the cluster reports (:mod:`agents.common.kafka_mode`, from
ApiVersions' finalized features), never on a setting:

- ZooKeeper mode: reads and SCRAM writes go to the active controller named by DescribeCluster
  (only it stores SCRAM credentials; another broker answers NOT_CONTROLLER and stores
  nothing); a NOT_CONTROLLER answer (the controller moved) refreshes it and resends once.
  Quota and ACL writes, which each broker stores in ZooKeeper itself, are spread over the
  brokers, the ACLs of one resource always to the same broker (its authorizer updates a
  resource's ZooKeeper node with a conditional write).
- KRaft mode: every broker forwards every write to the active controller, which no client
  reaches, and answers once it is committed; reads come from the broker's own copy of the
  metadata log. Reads go to one broker (the "home" broker, kept while it is registered),
  writes of every kind are spread over the brokers and lanes.

Large batches are split into short requests (:meth:`LaneClient.split`) and spread over up to
``lanes`` connections (:meth:`LaneClient.fan_out`).

Answers: a request-level error raises the matching ``kafka.errors`` exception
(:func:`raise_for`); a per-item error is a :class:`KafkaItemError` (:func:`item_error`), so the
caller can mark that one item.

The network clients have no I/O thread: each call drives the network on the calling thread,
each client under its own lock (callers: the reconcile worker and the /readyz check).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import kafka.errors as Errors
from kafka.net import KafkaNetClient
from kafka.protocol.admin import DescribeClusterRequest

from agents.common.kafka_mode import KRAFT, ZOOKEEPER, api_versions_request, mode_of_answer

NOT_CONTROLLER = Errors.NotControllerError.errno
PER_REQUEST = 50  # users per write request
MISSING = -1  # the code of an item Kafka's answer left out


@dataclass(frozen=True)
class KafkaItemError:
    """Kafka refused one item of a request."""

    code: int
    message: str

    @property
    def name(self) -> str:
        return Errors.for_code(self.code).__name__

    def __str__(self) -> str:
        return f"{self.name}: {self.message}" if self.message else self.name


def item_error(code: int, message: str | None) -> KafkaItemError | None:
    return KafkaItemError(code, message or Errors.for_code(code).description) if code else None


def raise_for(code: int, message: str | None, what: str) -> None:
    if code:
        raise Errors.for_code(code)(f"{what}: {message or ''}".rstrip(": "))


def missing(what: str = "user") -> KafkaItemError:
    """The error of an item Kafka's answer did not mention: no proof it was done."""
    return KafkaItemError(MISSING, f"Kafka's answer did not mention this {what}")


class _Lane:
    """One network client (its own connection to each broker), used by one thread at a time."""

    def __init__(self, client_config: dict, timeout_ms: int):
        self.lock = threading.Lock()
        self.client = KafkaNetClient(**client_config)
        try:
            self.client.check_version(timeout_ms=timeout_ms)  # bootstraps: fails fast
        except Exception:
            self.client.close()
            raise


class LaneClient:
    def __init__(self, client_config: dict, timeout_ms: int = 30000, lanes: int = 1):
        """``client_config``: kafka-python connection settings (bootstrap_servers, security
        and TLS files), e.g. :func:`agents.common.kafka_admin.client_kwargs`.

        ``lanes``: how many requests may be in flight at once. A broker works on one request
        of a connection at a time, and writes wait for ZooKeeper or the controller's commit,
        so large batches are split into up to ``lanes`` requests on separate connections
        (routed as the module says)."""
        self.timeout_ms, self.max_lanes = timeout_ms, max(1, lanes)
        self._config = client_config
        self._lanes = [_Lane(client_config, timeout_ms)]
        self._lanes_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.max_lanes, thread_name_prefix="kafka-lane")
        self._controller: int | None = None
        self._brokers: list[int] = []
        self._mode: str | None = None

    # ---- plumbing -------------------------------------------------------------------------
    def _lane(self, i: int) -> _Lane:
        with self._lanes_lock:
            while len(self._lanes) <= i:
                self._lanes.append(_Lane(self._config, self.timeout_ms))
            return self._lanes[i]

    def send(self, node_id, request, lane: int = 0):
        ln = self._lane(lane)
        with ln.lock:
            return ln.client.send_and_receive(node_id, request, timeout_ms=self.timeout_ms)

    def _any_node(self):
        node = self._lanes[0].client.least_loaded_node(bootstrap_fallback=True)
        if node is None:
            raise Errors.NodeNotReadyError("no broker to ask")
        return node

    def describe_cluster(self) -> dict:
        """{'controller_id': int, 'brokers': [{'broker_id', 'host', 'port'}], 'cluster_id'}

        In KRaft mode ``controller_id`` is a broker (chosen at random by the one asked)."""
        response = self.send(self._any_node(), DescribeClusterRequest())
        raise_for(response.error_code, response.error_message, "DescribeCluster")
        if response.controller_id is None or response.controller_id < 0:
            raise Errors.NodeNotReadyError("the cluster has no active controller")
        self._brokers = sorted(b.broker_id for b in response.brokers)
        # KRaft mode: the home broker stays while it is registered (the answer names a random
        # broker each time); ZooKeeper mode: the active controller as it is now
        if not (self._mode == KRAFT and self._controller in self._brokers):
            self._controller = response.controller_id
        return {
            "cluster_id": response.cluster_id,
            "controller_id": response.controller_id,
            "brokers": [
                {"broker_id": b.broker_id, "host": b.host, "port": b.port} for b in response.brokers
            ],
        }

    def mode(self) -> str:
        """``zookeeper`` or ``kraft``, as the cluster reports it (asked once)."""
        if self._mode is None:
            self._mode = mode_of_answer(self.send(self._any_node(), api_versions_request()))
        return self._mode

    def controller_id(self, refresh: bool = False) -> int:
        """ZooKeeper mode: the active controller; KRaft mode: the home broker (see the
        module)."""
        if self._controller is None or refresh:
            self.describe_cluster()
        return self._controller

    def brokers(self) -> list[int]:
        """Broker ids, the controller (KRaft: the home broker) first, so a single request goes
        where the reads come from."""
        if not self._brokers:
            self.describe_cluster()
        ctl = self._controller
        return (
            [ctl] + [b for b in self._brokers if b != ctl]
            if ctl in self._brokers
            else self._brokers
        )

    def to_controller(self, request, codes_of, lane: int = 0):
        """Sends ``request`` to the controller (KRaft: the home broker); when any code
        ``codes_of(response)`` gives is NOT_CONTROLLER, finds the controller again and
        resends (once)."""
        response = self.send(self.controller_id(), request, lane)
        if NOT_CONTROLLER in codes_of(response):
            response = self.send(self.controller_id(refresh=True), request, lane)
            if NOT_CONTROLLER in codes_of(response):
                raise Errors.NotControllerError("the controller moved twice; try again")
        return response

    def to_broker(self, request, codes_of, lane: int = 0, controller_only: bool = False):
        """Sends a write on ``lane``: to the broker of that lane, or to the controller when
        ``controller_only`` and the cluster is in ZooKeeper mode (in KRaft mode every
        broker forwards every write to the active controller)."""
        if controller_only and self.mode() == ZOOKEEPER:
            return self.to_controller(request, codes_of, lane)
        brokers = self.brokers()
        return self.send(brokers[lane % len(brokers)], request, lane)

    def writes_per_resource(self) -> bool:
        """Whether the writes to one ACL resource must all go through one broker (ZooKeeper
        mode: each broker's authorizer writes a resource's node itself)."""
        return self.mode() != KRAFT

    def fan_out(self, chunks: list, fn, most: int | None = None) -> list:
        """``fn(lane, chunk)`` for each chunk; chunk i runs on lane i % lanes (at most
        ``most`` lanes), the lanes concurrently and each lane's chunks one after the other.
        Results in order; any exception is raised once every lane has stopped."""
        lanes = min(self.max_lanes, len(chunks), most or self.max_lanes)
        if lanes <= 1:
            return [fn(0, c) for c in chunks]
        results: list = [None] * len(chunks)

        def run_lane(lane: int) -> None:
            for i in range(lane, len(chunks), lanes):
                results[i] = fn(lane, chunks[i])

        futures = [self._pool.submit(run_lane, lane) for lane in range(lanes)]
        for f in futures:
            f.exception()
        for f in futures:
            f.result()
        return results

    @staticmethod
    def split(items: list, per_request: int = PER_REQUEST) -> list[list]:
        """``items`` in chunks of at most ``per_request``: requests stay short, so a slow
        ZooKeeper does not push one past the request timeout."""
        return [items[i : i + per_request] for i in range(0, len(items), per_request)]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lanes_lock:
            for ln in self._lanes:
                with ln.lock:
                    ln.client.close()
