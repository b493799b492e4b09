"""Processes standing in for containers (devtools/procs.py): signals reach them."""

from __future__ import annotations

import signal

from devtools.procs import Proc


def test_children_receive_sigterm_even_when_the_parent_blocks_it(tmp_path):
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        proc = Proc("sleeper", ["sleep", "60"], tmp_path / "sleeper.log", tie_to_parent=False)
        proc.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    proc.stop(grace=20)
    assert proc.exit_code() == -signal.SIGTERM  # ended by SIGTERM, not by the SIGKILL after it
