"""KRaft mode: UnregisterBroker (API key 64, KIP-631), which a drain would send once a removed
broker is gone, so that the controllers forget its registration (a fenced broker that stays
registered is still listed by `kafka-cluster.sh` and counted by `kafka-features.sh`).

kafka-python has no message for it, so this module encodes the request and decodes the
answer by hand, as the protocol defines version 0 (a flexible version: compact strings and
tagged fields). Pure; tests/unit/test_scaling_unregister.py checks the bytes against the
layout of Kafka's UnregisterBrokerRequest.json / UnregisterBrokerResponse.json.

Not wired into the drain yet, and not exercised against a real Kafka 4: a broker must be shut
down before it is unregistered (a running one registers again), and the drain runs before
Helm removes the pod, so the call belongs to a step after the StatefulSet shrank (see
agents/scaling/README.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

API_KEY = 64
VERSION = 0


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
