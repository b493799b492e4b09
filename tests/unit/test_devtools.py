"""The harness' own pure parts and process handling (no Kafka needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from devtools.cluster import Addresses, wait_until
from devtools.procs import Proc, kill_pidfiles


def test_addresses_give_each_pod_its_own_address():
    a = Addresses("127.90.1.")
    addrs = [a.pod(k, i) for k in ("zookeeper", "kafka") for i in range(50)]
    assert len(set(addrs)) == len(addrs)
    assert all(x.startswith("127.90.1.") for x in addrs)


def test_picked_subnets_differ_between_runs():
    assert len({Addresses.pick([9093]).prefix for _ in range(5)}) > 1


def test_wait_until_names_what_it_waited_for_and_the_last_error():
    def never():
        raise ConnectionRefusedError("nope")

    with pytest.raises(TimeoutError, match=r"waiting for the moon.*nope"):
        wait_until(never, 0.3, "the moon", interval=0.05)


def test_wait_until_returns_the_first_truthy_result():
    calls = iter([0, None, "ready"])
    assert wait_until(lambda: next(calls), 5, "x", interval=0.01) == "ready"


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
    wait_until(lambda: not _alive(child), 10, "the orphaned child to die")


def test_kill_pidfiles_stops_detached_processes(tmp_path):
    p = Proc(
        "detached",
        ["sleep", "300"],
        tmp_path / "a" / "log",
        tie_to_parent=False,
        pidfile=tmp_path / "a" / "sleep.pid",
    )
    p.start()
    assert kill_pidfiles(tmp_path) == ["sleep"]
    p._popen.wait(10)  # reap it, as init would for a detached process
    assert not p.running()
    assert not list(tmp_path.rglob("*.pid"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


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
