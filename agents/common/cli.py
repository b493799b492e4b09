"""The shell every agent command shares: parse, build, run until SIGTERM/SIGINT, stop."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable

from .settings import Settings


def run_agent(
    prog: str,
    parser: argparse.ArgumentParser,
    build: Callable[[Settings], object],
    argv: list[str] | None,
) -> int:
    """Exit 2 with a one-line reason when the settings or the agent cannot be built; otherwise
    run the agent (``start()``/``stop()``) until the process is told to stop, then exit 0."""
    args = parser.parse_args(argv)
    try:
        agent = build(Settings.from_args(args))
    except Exception as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent.start()
    stop.wait()
    agent.log.info("stopping")
    agent.stop()
    return 0
