"""UnregisterBroker v0 (KRaft), encoded and decoded by hand: agents/scaling/unregister.py."""

from __future__ import annotations

import struct

from agents.scaling import unregister


def test_the_request_is_header_v2_then_the_broker_id():
    frame = unregister.request(3, correlation_id=7, client_id="kr")
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    body = frame[4:]
    # api key 64, version 0, correlation id, client id (INT16 length: header strings are not
    # compact), no tagged fields; BrokerId INT32, no tagged fields
    assert body == (
        struct.pack(">hhih", 64, 0, 7, 2) + b"kr" + b"\x00" + struct.pack(">i", 3) + b"\x00"
    )


def test_a_large_broker_id_and_correlation_id_fit():
    body = unregister.request(2**31 - 1, correlation_id=2**31 - 1, client_id="")[4:]
    assert body[-5:-1] == struct.pack(">i", 2**31 - 1)
    assert body[4:8] == struct.pack(">i", 2**31 - 1)


def test_an_answer_without_error():
    frame = struct.pack(">i", 7) + b"\x00" + struct.pack(">ih", 0, 0) + b"\x00" + b"\x00"
    assert unregister.answer(frame) == unregister.Answer(7, 0, 0, None)


def test_an_answer_with_kafkas_message_and_a_tagged_field_in_the_header():
    message = "Broker 3 not found."
    frame = (
        struct.pack(">i", 9)
        + b"\x01\x05\x02ab"  # one tagged field: tag 5, two bytes
        + struct.pack(">ih", 25, 102)  # BROKER_ID_NOT_REGISTERED
        + bytes([len(message) + 1])
        + message.encode()
        + b"\x00"
    )
    assert unregister.answer(frame) == unregister.Answer(9, 25, 102, message)


def test_varints_round_trip():
    for n in (0, 1, 127, 128, 300, 2**21, 2**31 - 1):
        encoded = unregister._uvarint(n)
        assert unregister._read_uvarint(encoded + b"\xff", 0) == (n, len(encoded))
