"""What the benchmarks sample of a running agent: peak RSS and CPU time."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from devtools.cluster import rss_bytes


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """Peak RSS and CPU time of one process, sampled every 0.1 s. CPU time does not depend on
    how busy the machine is, so it compares runs better than wall-clock time."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.cpu, self.stop = pid, 0, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_bytes([self.pid]))
            self.cpu = max(self.cpu, cpu_seconds(self.pid))
            self.stop.wait(0.1)
