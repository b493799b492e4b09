"""Pod addresses of local runs: every pod gets a loopback address of its own, so pods keep the
chart's ports; each run (the harness, a process node) takes a /24 of 127.0.0.0/8 at random, so
runs do not share addresses."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterable

FIRST, LAST = 2, 254  # host numbers handed out, in this order


class PodAddresses:
    """One /24 of loopback addresses, handed out one per pod. A pod keeps its address for the
    life of this object, across restarts, as a StatefulSet pod keeps its DNS name."""

    def __init__(self, prefix: str):
        self.prefix = prefix  # like '127.83.17.'
        self._by_pod: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    @classmethod
    def pick(cls, ports: Iterable[int] = ()) -> PodAddresses:
        """A random /24 whose first address has ``ports`` free: another run on the same /24
        would hold some of them there, since every run starts from the first address."""
        ports = list(ports)
        for _ in range(50):
            block = cls(f"127.{random.randint(64, 254)}.{random.randint(0, 254)}.")
            if all(_free(f"{block.prefix}{FIRST}", p) for p in ports):
                return block
        raise RuntimeError("no free loopback /24 found")

    def of(self, namespace: str, pod: str) -> str:
        with self._lock:
            key = (namespace, pod)
            if key not in self._by_pod:
                used = set(self._by_pod.values())
                free = (f"{self.prefix}{i}" for i in range(FIRST, LAST + 1))
                address = next((a for a in free if a not in used), None)
                if address is None:
                    raise RuntimeError(f"no address left in {self.prefix}0/24 for {pod}")
                self._by_pod[key] = address
            return self._by_pod[key]


def _free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False
