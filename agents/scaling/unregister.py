"""KRaft mode: UnregisterBroker (API key 64, KIP-631), sent after a scale-in once a removed
broker is gone, so that the controllers forget its registration (a fenced broker that stays
registered is still listed by `kafka-cluster.sh` and counted by `kafka-features.sh`).

kafka-python has no message for it, so this module encodes the request and decodes the
answer by hand, as the protocol defines version 0 (a flexible version: compact strings and
tagged fields). Pure; tests/unit/test_scaling_unregister.py checks the bytes against the
layout of Kafka's UnregisterBrokerRequest.json / UnregisterBrokerResponse.json.

`removed` is the decision of which registered brokers to unregister: the roll hook's last step
in KRaft mode (agents/roller/kraft_roll.py) sends the request for those, through
agents/roller/broker_unregister.py. A broker must be down first (a running one registers again
at once), so the step runs after Helm shrank the StatefulSet, never in the drain.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

API_KEY = 64
VERSION = 0
NONE, BROKER_ID_NOT_REGISTERED = 0, 102
# Kafka 4.4's controller answers an id it does not know with BROKER_ID_NOT_REGISTERED (checked
# against a real one in tests/integration/test_roller_kraft.py): for a step that may run twice
# or be killed between sending and logging, that is the same outcome as success.
DONE = frozenset({NONE, BROKER_ID_NOT_REGISTERED})


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_uvarint(buf: bytes, at: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def request(broker_id: int, correlation_id: int, client_id: str = "kairn-roller") -> bytes:
    """The request, size-prefixed: header v2 (api key, version, correlation id, client id as a
    plain nullable string, no tagged fields), then BrokerId and no tagged fields."""
    client = client_id.encode()
    header = struct.pack(">hhih", API_KEY, VERSION, correlation_id, len(client)) + client
    body = header + _uvarint(0) + struct.pack(">i", broker_id) + _uvarint(0)
    return struct.pack(">i", len(body)) + body


@dataclass(frozen=True)
class Answer:
    correlation_id: int
    throttle_ms: int
    error_code: int
    error_message: str | None


def answer(frame: bytes) -> Answer:
    """The response without its size prefix: header v1 (correlation id, tagged fields), then
    ThrottleTimeMs, ErrorCode, ErrorMessage (compact nullable string), tagged fields."""
    (correlation,) = struct.unpack_from(">i", frame, 0)
    tags, at = _read_uvarint(frame, 4)
    at = _skip_tags(frame, at, tags)
    throttle, code = struct.unpack_from(">ih", frame, at)
    length, at = _read_uvarint(frame, at + 6)
    message = None if length == 0 else frame[at : at + length - 1].decode()
    return Answer(correlation, throttle, code, message)


def _skip_tags(buf: bytes, at: int, count: int) -> int:
    for _ in range(count):
        _, at = _read_uvarint(buf, at)  # tag
        size, at = _read_uvarint(buf, at)
        at += size
    return at


def done(a: Answer) -> bool:
    return a.error_code in DONE


# ---- which brokers --------------------------------------------------------------------------
@dataclass(frozen=True)
class Removed:
    """``unregister``: removed brokers that are down, in id order. ``waiting``: removed brokers
    not down yet, with why (their pod still exists, or the controllers still count them live)."""

    unregister: tuple[int, ...] = ()
    waiting: dict[int, str] = field(default_factory=dict)


def removed(replicas: int, registered: Mapping[int, bool], pods: Collection[int]) -> Removed:
    """Registered brokers (id -> fenced) left over after the brokers' StatefulSet shrank to
    ``replicas``: broker ids are pod ordinals, so an id at or above it belongs to a removed pod.
    One is unregistered only when its pod (``pods``: existing ordinals, terminating ones
    included) is gone and the controllers have fenced it; a live broker never is."""
    out, waiting = [], {}
    for broker in sorted(b for b in registered if b >= replicas):
        if broker in pods:
            waiting[broker] = f"the pod of broker {broker} still exists"
        elif not registered[broker]:
            waiting[broker] = f"broker {broker} is not fenced yet"
        else:
            out.append(broker)
    return Removed(tuple(out), waiting)
