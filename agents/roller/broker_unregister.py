"""Kafka adapter for UnregisterBroker (KRaft): the hand-encoded request of
agents/scaling/unregister.py over its own mutual-TLS connection to a broker, which forwards it
to the active controller (the request's listeners are broker and controller, as for
DescribeQuorum: the hook needs no controller address).

kafka-python 3.0 has no message for API key 64 and its connection manager sends only its own
message classes, so this opens a plain socket: one request, one answer, closed. A broker
accepts a request without a prior ApiVersions exchange; version 0 is the only one there is.
"""

from __future__ import annotations

import itertools
import os
import socket
import ssl
import struct

from agents.scaling import unregister

from .zk import TlsFiles


class BrokerUnregister:
    def __init__(self, bootstrap: str, tls: TlsFiles, timeout: float = 10.0):
        self.addresses = [a.strip() for a in bootstrap.split(",") if a.strip()]
        self.tls, self.timeout = tls, timeout
        self._ids = itertools.count(int.from_bytes(os.urandom(2), "big"))

    def __call__(self, broker_id: int) -> unregister.Answer:
        """Sends UnregisterBroker to the first broker that takes a connection; the answer as
        Kafka gave it (the caller decides what counts as done)."""
        errors = []
        for address in self.addresses:
            host, _, port = address.rpartition(":")
            try:
                return self._send(host, int(port), broker_id)
            except (OSError, ValueError) as e:  # that broker is down (maybe the one removed)
                errors.append(f"{address}: {type(e).__name__}: {e}")
        raise ConnectionError("no broker answered UnregisterBroker: " + "; ".join(errors))

    def _send(self, host: str, port: int, broker_id: int) -> unregister.Answer:
        correlation = next(self._ids) % 2**31
        raw = socket.create_connection((host, port), timeout=self.timeout)
        with raw, self.tls.context().wrap_socket(raw, server_hostname=host) as s:
            s.sendall(unregister.request(broker_id, correlation))
            (size,) = struct.unpack(">i", _read(s, 4))
            answer = unregister.answer(_read(s, size))
        if answer.correlation_id != correlation:
            raise ValueError(f"answer to request {answer.correlation_id}, not {correlation}")
        return answer


def _read(s: ssl.SSLSocket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the broker closed the connection")  # e.g. not authorized
        buf += chunk
    return bytes(buf)
