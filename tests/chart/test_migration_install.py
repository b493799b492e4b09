"""A migration phase is a way from ZooKeeper to KRaft, never a way to install: `helm install`
with one is refused at render time, naming the two modes a release may start in."""

from __future__ import annotations

import pytest

from devtools.chart import helm_template


@pytest.mark.parametrize("phase", ["migration", "kraft-brokers"])
def test_installing_in_a_migration_phase_is_refused(phase):
    with pytest.raises(RuntimeError) as failed:
        helm_template("kairn", "kafka", {"kafka": {"metadata": {"mode": phase}}})
    assert (
        f"kafka.metadata.mode={phase} is a migration phase, not a way to install: install with "
        "kafka.metadata.mode=zookeeper (then helm upgrade --set kafka.metadata.mode=migration) "
        "or kafka.metadata.mode=kraft"
    ) in str(failed.value)
