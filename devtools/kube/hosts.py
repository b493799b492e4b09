"""Cluster DNS for pods run as local processes: a block of /etc/hosts.

A kubelet's pods resolve ``<pod>.<service>.<ns>.svc.<domain>`` and ``<service>.<ns>.svc...``
through the cluster's DNS. The process-backed node writes those names into its own block of
/etc/hosts instead, so configuration files and certificates keep their DNS names unchanged and
host-name verification works as in a cluster. Each node process owns one block, marked with
its pid; blocks of processes that are gone are dropped by the next writer.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from devtools.procs import alive as process_alive

BEGIN = "# BEGIN kairn process node pid={pid}"
END = "# END kairn process node pid={pid}"
_BLOCK = re.compile(
    r"# BEGIN kairn process node pid=(\d+)\n.*?# END kairn process node pid=\1\n", re.S
)


def dns_entries(pods: list[dict], services: list[dict], domain: str) -> dict[str, str]:
    """Host name -> address for pods (hostname + subdomain, as a StatefulSet sets them) and for
    Services with a selector (a Ready pod's address if any, else any matching pod's: a
    client that starts early still resolves the name). Pods are raw API objects with
    ``status.podIP`` set."""
    entries: dict[str, str] = {}
    live = [p for p in pods if p.get("status", {}).get("podIP")]
    for p in live:
        spec, ns = p["spec"], p["metadata"]["namespace"]
        if spec.get("hostname") and spec.get("subdomain"):
            base = f"{spec['hostname']}.{spec['subdomain']}.{ns}.svc"
            entries[base] = entries[f"{base}.{domain}"] = p["status"]["podIP"]
    for svc in services:
        ns, selector = svc["metadata"]["namespace"], svc["spec"].get("selector")
        if not selector:
            continue
        matching = sorted(
            (
                p
                for p in live
                if p["metadata"]["namespace"] == ns
                and selector.items() <= (p["metadata"].get("labels") or {}).items()
            ),
            key=lambda p: (not _ready(p), p["metadata"]["name"]),
        )
        if matching:
            base = f"{svc['metadata']['name']}.{ns}.svc"
            entries[base] = entries[f"{base}.{domain}"] = matching[0]["status"]["podIP"]
    return entries


def _ready(pod: dict) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def render_block(entries: dict[str, str], pid: int) -> str:
    lines = [f"{addr} {name}" for name, addr in sorted(entries.items())]
    return "\n".join([BEGIN.format(pid=pid), *lines, END.format(pid=pid)]) + "\n"


def replace_block(text: str, block: str, pid: int, alive=None) -> str:
    """``text`` of a hosts file with this pid's block replaced by ``block`` (empty removes
    it), and the blocks of dead processes dropped."""
    alive = alive or process_alive

    def keep(m: re.Match) -> str:
        owner = int(m.group(1))
        return "" if owner == pid or not alive(owner) else m.group(0)

    text = _BLOCK.sub(keep, text)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + block


class HostsFile:
    """This process's block of a hosts file. Written in place under a lock (a container's
    /etc/hosts is often a bind mount that cannot be replaced by a rename)."""

    def __init__(self, path: str | os.PathLike = "/etc/hosts"):
        self.path = Path(path)
        self.pid = os.getpid()
        self._last: dict[str, str] | None = None

    def write(self, entries: dict[str, str]) -> bool:
        """Returns True when the file changed."""
        if entries == self._last:
            return False
        self._edit(render_block(entries, self.pid) if entries else "")
        self._last = dict(entries)
        return True

    def remove(self) -> None:
        self._edit("")
        self._last = None

    def _edit(self, block: str) -> None:
        with open(self.path, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            new = replace_block(f.read(), block, self.pid)
            f.seek(0)
            f.write(new)
            f.truncate()
