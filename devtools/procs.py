"""Local processes: started in a session of their own, stopped with SIGTERM then SIGKILL.

Every process leads its own process group and writes its output to a log file. A process
started with ``die_with_parent`` gets that signal when the Python process that started it ends
(PR_SET_PDEATHSIG), so an interrupted or killed test run leaves nothing behind; the playground
starts the control plane without it, so that ``make up`` can return, and stops it again from
the pid files.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from devtools.waiting import wait_until

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded here: the forked child only calls it

# PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process. Tied
# children are therefore forked from this one worker thread, which lives as long as the process.
_SPAWNER = ThreadPoolExecutor(1, thread_name_prefix="spawner")


def _child_setup(die_with_parent: signal.Signals | None) -> Callable[[], None]:
    parent = os.getpid()

    def setup() -> None:  # runs in the child between fork and exec
        # A blocked signal mask survives exec: a parent that waits for SIGTERM with sigwait
        # (the process node) would otherwise hand its children a SIGTERM they never receive.
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        if die_with_parent is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, die_with_parent)
            if os.getppid() != parent:  # the parent died between fork and prctl
                os._exit(1)

    return setup


def spawn(
    argv: list[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: signal.Signals | None = signal.SIGKILL,
) -> subprocess.Popen:
    """Starts ``argv`` as the leader of a new session, its output appended to ``log``."""
    with log.open("ab") as out:  # the child has its own copy of the descriptor
        start = functools.partial(
            subprocess.Popen,
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            preexec_fn=_child_setup(die_with_parent),
        )
        return _SPAWNER.submit(start).result() if die_with_parent else start()


def end_group(pid: int, gone: Callable[[], bool], grace: float | None) -> None:
    """Ends the process group that ``pid`` leads: SIGTERM and ``grace`` seconds to exit, then
    SIGKILL (at once when ``grace`` is None, as a node crash would). ``gone`` says whether it
    has exited. RuntimeError if it survives SIGKILL."""
    steps = [(signal.SIGTERM, grace)] if grace is not None else []
    for sig, wait in [*steps, (signal.SIGKILL, 10.0)]:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass  # the group is empty; its leader may still have to be reaped
        except PermissionError:  # a member of the group is not ours to signal
            os.kill(pid, sig)
        try:
            wait_until(gone, wait, f"process {pid} to exit", interval=0.05)
            return
        except TimeoutError:
            continue
    raise RuntimeError(f"process {pid} survived SIGKILL")


def alive(pid: int, command_has: str | None = None) -> bool:
    """Whether ``pid`` is a running process (a zombie is not), and with ``command_has``, one
    whose command line contains that text (a pid from a file may have been reused since)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    return command_has is None or command_has.encode() in cmdline


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
        with self.log.open("ab") as out:
            out.write(f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
        self._popen = spawn(
            self.argv,
            self.log,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            die_with_parent=signal.SIGKILL if self.tie_to_parent else None,
        )
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
        if self.running():
            self._end(grace)

    def kill(self) -> None:
        """SIGKILL the whole process group, as a node crash would."""
        if self._popen is not None:
            self._end(None)

    def _end(self, grace: float | None) -> None:
        popen = self._popen
        assert popen is not None
        if popen.poll() is None:
            end_group(popen.pid, lambda: popen.poll() is not None, grace)
        if self.pidfile:
            self.pidfile.unlink(missing_ok=True)
