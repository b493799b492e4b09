"""Starting and stopping the control plane leaves nothing running: `up`/`down` from the
command line, and children that end with the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from devtools.kube import ROOT
from devtools.kube.controlplane import ControlPlane
from tests.e2e.helpers import wait_for


def _ours(run_dir: Path) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if str(run_dir).encode() in (d / "cmdline").read_bytes():
                stat = (d / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(d.name))
        except OSError:
            continue
    return pids


def test_cli_up_then_down_leaves_nothing(tmp_path):
    run_dir = tmp_path / "cli"
    up = subprocess.run(
        [sys.executable, "-m", "devtools.kube", "up", str(run_dir), "--nodes", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        assert up.returncode == 0, up.stderr
        assert "export KUBECONFIG=" in up.stdout
        assert len(_ours(run_dir)) == 6
        status = subprocess.run(
            [sys.executable, "-m", "devtools.kube", "status", str(run_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.stdout.split() == [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
            "provisioner",
        ]
        again = subprocess.run(
            [sys.executable, "-m", "devtools.kube", "up", str(run_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "devtools.kube", "down", str(run_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert down.returncode == 0, down.stderr
    assert _ours(run_dir) == []
    assert not list((run_dir / "pids").iterdir())


def test_children_die_with_the_starting_process(tmp_path):
    run_dir = tmp_path / "orphans"
    # The run folder goes through the environment: only the components' command lines
    # name it, so _ours() counts exactly them.
    script = textwrap.dedent("""
        import os, sys
        from devtools.kube.controlplane import ControlPlane
        ControlPlane(os.environ["RUN_DIR"], nodes=1, die_with_parent=True).start()
        print("ready", flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "RUN_DIR": str(run_dir)},
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert len(_ours(run_dir)) == 6
        proc.send_signal(signal.SIGKILL)  # no cleanup code runs in the parent
        proc.wait(timeout=30)
        wait_for(
            "components gone after their parent was killed",
            lambda: _ours(run_dir) == [],
            timeout=60,
        )
    finally:
        if proc.poll() is None:
            proc.kill()
        ControlPlane(run_dir).stop()
    assert os.path.exists(run_dir / "logs" / "kube-apiserver.log")
