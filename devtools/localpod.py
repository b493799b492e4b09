"""One planned pod (devtools/podspec.py) as local processes, run the way a kubelet runs a pod.

Start order: init containers in their declared order (a run-once init container must exit 0
before the next starts; a native sidecar is started and left running), then the main
containers. Stop order: main containers first, then sidecars in reverse, so that a broker's
ZooKeeper sidecar outlives the broker's controlled shutdown. Readiness: the containers' own
probes (exec, tcpSocket, httpGet).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from devtools import ROOT, TOOLS
from devtools.podspec import ContainerRun, PodRun
from devtools.procs import Proc
from devtools.waiting import wait_until

PATH_ENV = f"{ROOT / '.venv' / 'bin'}:{TOOLS / 'bin'}:{os.environ.get('PATH', '')}"


class InitContainerFailed(RuntimeError):
    def __init__(self, container: str, code: int | None, log: Path):
        super().__init__(f"init container {container} exited with {code} (log: {log})")
        self.container, self.code, self.log = container, code, log


class LocalPod:
    def __init__(self, run: PodRun, folder: Path, *, tie_to_parent: bool = True):
        self.run, self.folder = run, folder
        self.address = run.identity.address
        self.procs: dict[str, Proc] = {}
        self.specs: dict[str, ContainerRun] = {c.name: c for c in run.containers}
        self.restarts: dict[str, int] = {c.name: 0 for c in run.containers}
        self.init_codes: dict[str, int] = {}
        self._tie = tie_to_parent

    def _proc(self, c: ContainerRun) -> Proc:
        return Proc(
            f"{self.run.identity.name}/{c.name}",
            c.argv,
            self.folder / f"{c.name}.log",
            env={**c.env, "PATH": PATH_ENV},
            cwd=self.folder,
            tie_to_parent=self._tie,
            pidfile=self.folder / f"{c.name}.pid",
        )

    def prepare(self) -> None:
        """Write the pod's files and create its folders (what a kubelet mounts)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for d in self.run.dirs:
            d.mkdir(parents=True, exist_ok=True)
        for path, text in self.run.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def start(self, init_timeout: float = 300.0) -> None:
        """Every container in order; raises InitContainerFailed when a run-once init container
        fails (nothing after it was started)."""
        self.prepare()
        for c in self.run.containers:
            proc = self.procs[c.name] = self._proc(c)
            proc.start()
            if c.init:
                code = self._wait_exit(proc, init_timeout)
                self.init_codes[c.name] = code
                if code != 0:
                    raise InitContainerFailed(c.name, code, proc.log)

    @staticmethod
    def _wait_exit(proc: Proc, timeout: float) -> int | None:
        try:
            wait_until(lambda: not proc.running(), timeout, f"{proc.name} to exit", interval=0.05)
        except TimeoutError:
            proc.kill()
        return proc.exit_code()

    def long_running(self) -> list[str]:
        return [c.name for c in self.run.containers if not c.init and c.name in self.procs]

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM then SIGKILL after the grace period: main containers, then sidecars."""
        grace = self.run.grace_seconds if grace is None else grace
        deadline = time.monotonic() + grace
        mains = [n for n in self.long_running() if not self.specs[n].sidecar]
        sidecars = [n for n in self.long_running() if self.specs[n].sidecar]
        for name in mains + list(reversed(sidecars)):
            self.procs[name].stop(max(1.0, deadline - time.monotonic()))

    def kill(self) -> None:
        for proc in self.procs.values():
            proc.kill()

    def running(self) -> bool:
        names = self.long_running()
        return bool(names) and all(self.procs[n].running() for n in names)

    def exited(self) -> dict[str, int | None]:
        """Long-running containers that have exited, with their exit codes."""
        return {
            n: self.procs[n].exit_code() for n in self.long_running() if not self.procs[n].running()
        }

    def restart(self, name: str) -> None:
        self.restarts[name] += 1
        self.procs[name].start()

    def container_ready(self, name: str, timeout: float = 8.0) -> bool:
        c, proc = self.specs[name], self.procs.get(name)
        if proc is None or not proc.running():
            return False
        if c.readiness:
            env = {**os.environ, **c.env, "PATH": PATH_ENV}
            try:
                probe = subprocess.run(c.readiness, env=env, capture_output=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
            return probe.returncode == 0
        if c.ready_http:
            port, path = c.ready_http
            try:
                with urllib.request.urlopen(
                    f"http://{self.address}:{port}{path}", timeout=timeout
                ) as r:
                    return 200 <= r.status < 400
            except (urllib.error.URLError, OSError):
                return False
        if c.ready_port:
            return accepts(self.address, c.ready_port)
        return True

    def ready(self) -> bool:
        return self.running() and all(self.container_ready(n) for n in self.long_running())

    def logs(self) -> list[Path]:
        return [p.log for p in self.procs.values()]


def accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False
