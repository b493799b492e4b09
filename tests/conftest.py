"""Fixtures shared by every tier: the real Kafka clusters (`kafka_cluster` in ZooKeeper mode,
`kraft_cluster` in KRaft mode) and the local control
plane (`kube`, `api`, `core`, `namespace` from devtools/kube/pytest_plugin.py) are each started
once per session, on first use."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from devtools.cluster import LocalCluster

pytest_plugins = ["devtools.kube.pytest_plugin"]

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / ".run" / "tests"
KEEP_RUNS = 5


def _owner_alive(run: Path) -> bool:
    """Whether the test process named in ``<date>-<time>-<pid>-<name>`` still runs."""
    parts = run.name.split("-", 3)
    if len(parts) < 3 or not parts[2].isdigit():
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_run_dir(name: str) -> Path:
    """A fresh folder for one cluster's data and logs; the oldest runs are pruned, except those
    of a test process still running (a tier starts more clusters than it keeps, and a session
    cluster whose folder went away would lose its data and logs under its brokers)."""
    RUNS.mkdir(parents=True, exist_ok=True)
    for old in sorted(RUNS.iterdir())[:-KEEP_RUNS]:
        if not _owner_alive(old):
            shutil.rmtree(old, ignore_errors=True)
    run = RUNS / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{name}"
    run.mkdir(parents=True)
    return run


_clusters: list[LocalCluster] = []


@pytest.fixture(scope="session")
def kafka_cluster() -> LocalCluster:
    """3 ZooKeeper nodes + 3 brokers, TLS everywhere, ACL authorizer on."""
    cluster = LocalCluster(new_run_dir("cluster"))
    _clusters.append(cluster)
    started = time.monotonic()
    try:
        cluster.start()
        cluster.startup_seconds = time.monotonic() - started
        yield cluster
    finally:
        # Nothing after the session needs the brokers' controlled shutdown, and the last broker
        # standing can only wait it out (see LocalCluster.stop): 5 s instead of 15 per tier.
        cluster.stop(grace=5)


@pytest.fixture(scope="session")
def kraft_cluster():
    """Kafka 4 in KRaft mode (devtools/kraft.py): 3 controllers + 3 brokers, mutual TLS,
    StandardAuthorizer; one per session, started on first use (about 40 s)."""
    from devtools.kraft import KRaftCluster

    cluster = KRaftCluster(new_run_dir("kraft"))
    _clusters.append(cluster)
    started = time.monotonic()
    try:
        cluster.start()
        cluster.startup_seconds = time.monotonic() - started
        yield cluster
    finally:
        cluster.stop(grace=5)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and _clusters:
        logs = "\n".join(f"cluster logs: {c.run_dir}" for c in _clusters)
        report.sections.append(("kafka cluster", logs))
    return report
