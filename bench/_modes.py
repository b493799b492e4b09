"""The Kafka cluster of each metadata mode for the agents' benchmarks, and their ``--mode`` flag.

``zookeeper``: the harness' cluster (devtools/cluster.py: 3 ZooKeeper nodes + 3 brokers of
Kafka 3.9 from the chart). ``kraft``: devtools/kraft.py (3 controllers + 3 brokers of Kafka
4). Both with the chart's TLS listeners and the agents' identity, so a benchmark runs the
same steps against either; ``both`` runs ZooKeeper mode, then KRaft mode, one cluster at a
time (the machine has 2 cores).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from devtools.cluster import LocalCluster

MODES = ("zookeeper", "kraft")
DEFAULT_BROKER_HEAP_MB = 384  # the harness' brokers (HARNESS_VALUES)


def add_mode_flag(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--mode",
        choices=[*MODES, "both"],
        default="both",
        help="the metadata mode of the cluster: zookeeper, kraft, or both, one after the "
        "other in one run (default both)",
    )


def modes_of(flag: str) -> tuple[str, ...]:
    return MODES if flag == "both" else (flag,)


def new_cluster(mode: str, run_dir: Path, heap_mb: int | None = None):
    """An unstarted cluster of ``mode`` whose brokers get ``heap_mb`` MiB of heap (None: the
    harness' own)."""
    heap = f"-Xms{heap_mb}m -Xmx{heap_mb}m" if heap_mb else None
    values = {"kafka": {"heapOpts": heap}} if heap else {}
    if mode == "zookeeper":
        return LocalCluster(run_dir, values=values)
    from devtools.kraft import KRaftCluster

    try:  # the KRaft cluster from the chart's rendering takes the chart's values
        return KRaftCluster(run_dir, values=values)
    except TypeError:  # the stand-in writes its own settings: only the brokers' heap differs
        if not heap:
            return KRaftCluster(run_dir)

        class BiggerBrokers(KRaftCluster):
            def java_env(self, h: str, log_level: str = "INFO") -> dict[str, str]:
                default = f"-Xms{DEFAULT_BROKER_HEAP_MB}m -Xmx{DEFAULT_BROKER_HEAP_MB}m"
                return super().java_env(heap if h == default else h, log_level)

        return BiggerBrokers(run_dir)


def comparison(results: dict[str, dict], rows: list[tuple[str, str]]) -> str:
    """A Markdown table of ``rows`` (label, key; a dotted key reads into nested figures), one
    column per mode of ``results``."""
    modes = list(results)

    def value(figures: dict, key: str):
        for part in key.split("."):
            figures = figures.get(part) if isinstance(figures, dict) else None
        return "-" if figures is None else figures

    lines = [
        "| | " + " | ".join(modes) + " |",
        "|---|" + "---|" * len(modes),
    ]
    for label, key in rows:
        lines.append(
            f"| {label} | " + " | ".join(str(value(results[m], key)) for m in modes) + " |"
        )
    return "\n".join(lines)
