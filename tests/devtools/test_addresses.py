"""Pod addresses of local runs (devtools/addresses.py)."""

from __future__ import annotations

import socket

import pytest

from devtools.addresses import FIRST, LAST, PodAddresses


def test_every_pod_gets_its_own_address_and_keeps_it():
    a = PodAddresses("127.90.1.")
    pods = [(ns, f"pod-{i}") for ns in ("kafka", "other") for i in range(50)]
    addrs = [a.of(ns, name) for ns, name in pods]
    assert len(set(addrs)) == len(addrs)
    assert all(x.startswith("127.90.1.") for x in addrs)
    assert [a.of(ns, name) for ns, name in pods] == addrs  # stable across restarts


def test_addresses_run_out_with_a_clear_error():
    a = PodAddresses("127.90.2.")
    for i in range(LAST - FIRST + 1):
        a.of("ns", f"pod-{i}")
    with pytest.raises(RuntimeError, match="no address left"):
        a.of("ns", "one-too-many")


def test_picked_blocks_differ_between_runs():
    assert len({PodAddresses.pick([9093]).prefix for _ in range(5)}) > 1


def test_a_block_whose_first_address_holds_a_port_is_not_picked(monkeypatch):
    taken = PodAddresses("127.91.3.")
    with socket.socket() as s:
        s.bind((taken.of("ns", "first"), 0))
        port = s.getsockname()[1]
        choices = iter([91, 3, 91, 4])  # the taken /24 first, then a free one
        monkeypatch.setattr("devtools.addresses.random.randint", lambda a, b: next(choices))
        assert PodAddresses.pick([port]).prefix == "127.91.4."
