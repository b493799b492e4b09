"""ZooKeeper adapter: `srvr` and `mntr` four-letter words over mutual TLS (the nodes' stunnel
sidecars), and reading znodes with kazoo over TLS."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from .model import ZkNode


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    cert: str
    key: str
    check_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.load_cert_chain(self.cert, self.key)
        ctx.check_hostname = self.check_hostname
        return ctx


def parse_nodes(spec: str) -> list[tuple[str, int]]:
    """`host:port,...` (KAIRN_ZOOKEEPER_NODES, in ordinal order)."""
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"ZooKeeper node {item!r} is not host:port")
        out.append((host, int(port)))
    return out


def parse_mode(srvr: str) -> str | None:
    for line in srvr.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def parse_mntr(mntr: str) -> dict[str, str]:
    out = {}
    for line in mntr.splitlines():
        k, _, v = line.partition("\t")
        if k:
            out[k.strip()] = v.strip()
    return out


class ZooKeeper:
    """The ensemble's nodes by ordinal."""

    def __init__(self, nodes: Sequence[tuple[str, int]], tls: TlsFiles, timeout: float = 5.0):
        self.nodes, self.tls, self.timeout = list(nodes), tls, timeout

    def four_letter_word(self, ordinal: int, word: str) -> str:
        host, port = self.nodes[ordinal]
        ctx = self.tls.context()
        with (
            socket.create_connection((host, port), timeout=self.timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as s,
        ):
            s.sendall(word.encode())
            chunks = []
            while data := s.recv(4096):
                chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def node(self, ordinal: int) -> ZkNode:
        try:
            srvr = self.four_letter_word(ordinal, "srvr")
            mode = parse_mode(srvr)
            if mode is None:
                first = srvr.strip().splitlines()[0] if srvr.strip() else "no answer"
                return ZkNode(ordinal, None, error=first)
            synced = None
            if mode == "leader":
                m = parse_mntr(self.four_letter_word(ordinal, "mntr"))
                if "zk_synced_followers" in m:
                    synced = int(float(m["zk_synced_followers"]))
            return ZkNode(ordinal, mode, synced)
        except (OSError, ValueError) as e:
            return ZkNode(ordinal, None, error=f"{type(e).__name__}: {e}")

    def status(self) -> list[ZkNode]:
        return [self.node(i) for i in range(len(self.nodes))]

    def read(self, path: str) -> bytes | None:
        """A znode's data through kazoo over mutual TLS (e.g. /controller_epoch)."""
        zk = kazoo_client(self.nodes, self.tls)
        zk.start(timeout=15)
        try:
            if not zk.exists(path):
                return None
            data, _ = zk.get(path)
            return data
        finally:
            zk.stop()
            zk.close()

    def controller_epoch(self) -> int | None:
        data = self.read("/controller_epoch")
        return int(data) if data else None


def kazoo_client(nodes: Sequence[tuple[str, int]], tls: TlsFiles):
    """A kazoo client (not started) for the ensemble, over mutual TLS."""
    from kazoo.client import KazooClient

    return KazooClient(
        hosts=",".join(f"{h}:{p}" for h, p in nodes),
        use_ssl=True,
        ca=tls.ca,
        certfile=tls.cert,
        keyfile=tls.key,
        verify_certs=True,  # kazoo checks the chain, not the host name
        timeout=10,
    )
