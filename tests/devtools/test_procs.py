"""Processes standing in for containers and control plane components (devtools/procs.py):
signals reach them, they stop with SIGTERM then SIGKILL, and tied ones die with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from devtools.procs import Proc, alive
from devtools.waiting import wait_until


def test_proc_stop_escalates_to_sigkill_when_term_is_ignored(tmp_path):
    script = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('READY'.lower(), flush=True); signal.pause()"
    p = Proc(
        "stubborn", [sys.executable, "-c", script], tmp_path / "log", pidfile=tmp_path / "p.pid"
    )
    p.start()
    wait_until(lambda: "\nready" in (tmp_path / "log").read_text(), 10, "the child to start")
    assert (tmp_path / "p.pid").exists()
    p.stop(grace=0.5)
    assert not p.running()
    assert p.exit_code() == -signal.SIGKILL
    assert not (tmp_path / "p.pid").exists()


def test_tied_processes_die_with_the_process_that_started_them(tmp_path):
    """kill -9 of a test run must not leave its cluster behind."""
    pidfile = tmp_path / "child.pid"
    parent = textwrap.dedent(f"""
        import signal
        from pathlib import Path
        from devtools.procs import Proc
        p = Proc("child", ["sleep", "300"], Path({str(tmp_path / "log")!r}), pidfile=Path({str(pidfile)!r}))
        p.start()
        print("started", flush=True)
        signal.pause()
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, cwd=os.getcwd())
    assert proc.stdout.readline().strip() == b"started"
    child = int(pidfile.read_text())
    proc.kill()
    proc.wait()
    wait_until(lambda: not alive(child), 10, "the orphaned child to die")


def test_a_process_started_from_a_short_lived_thread_keeps_running(tmp_path):
    """PR_SET_PDEATHSIG follows the forking thread; the pod must outlive the thread that started it."""
    import threading

    p = Proc("from-thread", ["sleep", "300"], tmp_path / "log")
    t = threading.Thread(target=p.start)
    t.start()
    t.join()
    try:
        with pytest.raises(TimeoutError):
            wait_until(lambda: not p.running(), 1.0, "the child to die", interval=0.1)
    finally:
        p.kill()


def test_children_receive_sigterm_even_when_the_parent_blocks_it(tmp_path):
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        proc = Proc("sleeper", ["sleep", "60"], tmp_path / "sleeper.log", tie_to_parent=False)
        proc.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    proc.stop(grace=20)
    assert proc.exit_code() == -signal.SIGTERM  # ended by SIGTERM, not by the SIGKILL after it


def test_tied_children_receive_sigterm_even_when_the_parent_blocks_it(tmp_path):
    """The process node blocks SIGTERM to sigwait on it; its pods must not inherit that."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        proc = Proc("sleeper", ["sleep", "60"], tmp_path / "sleeper.log")
        proc.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    proc.stop(grace=20)
    assert proc.exit_code() == -signal.SIGTERM


def test_alive_knows_a_process_by_its_command_line(tmp_path):
    # the mark is $0 of the shell, which stays the process (sleep would refuse it as a duration)
    p = Proc("marked", ["sh", "-c", "sleep 300; :", str(tmp_path)], tmp_path / "log")
    p.start()
    try:
        assert alive(p.pid) and alive(p.pid, command_has=str(tmp_path))
        assert not alive(p.pid, command_has=str(tmp_path / "other"))
    finally:
        p.kill()
    assert not alive(p.pid)
