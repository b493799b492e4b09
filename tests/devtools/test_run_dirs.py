"""Run folders: pruning keeps the folders of test processes that still run (their clusters
keep data and logs there)."""

from __future__ import annotations

import os
import subprocess

import tests.conftest as shared


def test_pruning_spares_running_owners(tmp_path, monkeypatch):
    monkeypatch.setattr(shared, "RUNS", tmp_path)
    monkeypatch.setattr(shared, "KEEP_RUNS", 1)
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = tmp_path / f"20260101-000000-{dead.pid}-old"
    mine = tmp_path / f"20260101-000001-{os.getpid()}-session"
    for d in (gone, mine):
        d.mkdir()
    new = shared.new_run_dir("next")
    assert new.is_dir()
    assert mine.is_dir(), "the running session's folder was pruned"
    assert not gone.exists(), "a finished run was kept"
