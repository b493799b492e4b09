"""Local processes that stand in for containers: start, stop (TERM then KILL), kill -9.

Every process runs in its own session and writes its output to a log file. Processes started
with ``tie_to_parent`` die with the Python process that started them (PR_SET_PDEATHSIG), so an
interrupted or killed test run leaves nothing behind; the playground starts them untied and
records their pids instead, so ``make down`` can find them again.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


# PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process. Tied
# children are therefore forked from this one worker thread, which lives as long as the process.
_SPAWNER = ThreadPoolExecutor(1, thread_name_prefix="spawner")


def _unblock_signals() -> None:  # runs in the child between fork and exec
    # A blocked signal mask survives exec: a parent that waits for SIGTERM with sigwait would
    # otherwise hand its children a SIGTERM they never receive.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _unblock_signals()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Proc:
    """One long-running process with a fixed command line, restartable."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    tie_to_parent: bool = True
    pidfile: Path | None = None
    _popen: subprocess.Popen | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        out.write(f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
        out.flush()
        spawn = functools.partial(
            subprocess.Popen,
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.tie_to_parent else _unblock_signals,
        )
        self._popen = _SPAWNER.submit(spawn).result() if self.tie_to_parent else spawn()
        out.close()
        if self.pidfile:
            self.pidfile.parent.mkdir(parents=True, exist_ok=True)
            self.pidfile.write_text(str(self._popen.pid))

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def exit_code(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds: what a kubelet does on pod delete."""
        if not self.running():
            return
        assert self._popen is not None
        os.killpg(self._popen.pid, signal.SIGTERM)
        try:
            self._popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
        self._forget_pid()

    def kill(self) -> None:
        """SIGKILL the whole process group, as a node crash would."""
        if self._popen is None:
            return
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._popen.pid, signal.SIGKILL)
            self._popen.wait(10)
        self._forget_pid()

    def _forget_pid(self) -> None:
        if self.pidfile and self.pidfile.exists():
            self.pidfile.unlink()


def kill_pidfiles(folder: Path) -> list[str]:
    """Kill every process group named by a ``*.pid`` file under ``folder``; return their names."""
    killed = []
    for pidfile in sorted(folder.rglob("*.pid")):
        try:
            pid = int(pidfile.read_text().strip())
            os.killpg(pid, signal.SIGTERM)
            killed.append(pidfile.stem)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 30
    for pidfile in sorted(folder.rglob("*.pid")):
        pid = int(pidfile.read_text().strip() or 0)
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        pidfile.unlink()
    return killed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
