"""After a scale-in, the certificates of the removed pods leave the Secret
(agents.pki.plan.stale_pod_entries); those of pods still running stay."""

from __future__ import annotations

from agents.pki.plan import stale_pod_entries


def entries(*pods: str) -> list[str]:
    return [f"{p}.{s}" for p in pods for s in ("crt", "key", "p12", "password")] + ["ca.crt"]


def test_a_removed_pods_certificate_is_stale():
    keys = entries("kairn-kafka-0", "kairn-kafka-1", "kairn-kafka-2", "kairn-kafka-3")
    existing = ["kairn-kafka-0", "kairn-kafka-1", "kairn-kafka-2"]
    assert stale_pod_entries(keys, "kairn-kafka", 3, existing) == [
        "kairn-kafka-3.crt",
        "kairn-kafka-3.key",
        "kairn-kafka-3.p12",
        "kairn-kafka-3.password",
    ]


def test_a_pod_still_running_keeps_its_certificate():
    keys = entries("kairn-kafka-0", "kairn-kafka-3")
    assert stale_pod_entries(keys, "kairn-kafka", 3, ["kairn-kafka-0", "kairn-kafka-3"]) == []


def test_only_this_statefulsets_pod_entries_count():
    keys = [*entries("kairn-kafka-9", "other-kafka-9", "kairn-kafka-x"), "kairn-kafka-9.txt"]
    stale = stale_pod_entries(keys, "kairn-kafka", 3, [])
    assert stale == [f"kairn-kafka-9.{s}" for s in ("crt", "key", "p12", "password")]


def test_pods_within_the_replicas_are_never_stale_even_when_missing():
    # a pod being recreated is briefly missing: its certificate must stay
    assert stale_pod_entries(entries("kairn-kafka-1"), "kairn-kafka", 3, []) == []


# ---- wired into kairn-certs' run ------------------------------------------------------------
import json  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from agents.pki.model import RENEWED_AT, Desired  # noqa: E402
from agents.pki.plan import DropEntries  # noqa: E402
from agents.pki.run import run  # noqa: E402
from agents.pki.store import MemorySecretStore  # noqa: E402

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FOUR = Desired("kairn", "ns1", kafka_replicas=4)
THREE = Desired("kairn", "ns1", kafka_replicas=3)
ALIVE = [f"kairn-zookeeper-{i}" for i in range(3)] + [f"kairn-kafka-{i}" for i in range(3)]


def four_brokers() -> MemorySecretStore:
    store = MemorySecretStore()
    run(store, FOUR, NOW)
    return store


def test_the_run_drops_a_removed_brokers_certificate_and_its_mark():
    store = four_brokers()
    before = store.secrets["kairn-kafka-brokers"]
    assert "kairn-kafka-3.crt" in before.data and "kairn-kafka-3" in before.annotations[RENEWED_AT]
    p, written = run(store, THREE, NOW, pods=lambda: ALIVE)
    (drop,) = [a for a in p.actions if isinstance(a, DropEntries)]
    assert drop.secret == "kairn-kafka-brokers" and drop.pods == ("kairn-kafka-3",)
    assert list(written) == ["kairn-kafka-brokers"]  # nothing else changes, nothing re-issued
    after = store.secrets["kairn-kafka-brokers"]
    assert not [k for k in after.data if k.startswith("kairn-kafka-3.")]
    assert {k: v for k, v in after.data.items() if not k.startswith("kairn-kafka-3.")} == {
        k: v for k, v in before.data.items() if not k.startswith("kairn-kafka-3.")
    }
    assert "kairn-kafka-3" not in json.loads(after.annotations[RENEWED_AT])
    again, written = run(store, THREE, NOW, pods=lambda: ALIVE)
    assert again.actions == () and written == {}


def test_while_the_pod_still_runs_or_pods_are_unknown_nothing_is_dropped():
    store = four_brokers()
    p, written = run(store, THREE, NOW, pods=lambda: [*ALIVE, "kairn-kafka-3"])
    assert p.actions == () and written == {}
    p, written = run(store, THREE, NOW)  # no pod lister (kairn-certs --out-dir)
    assert p.actions == () and written == {}


def test_a_pod_list_that_fails_drops_nothing_and_the_run_goes_on():
    store, logged = four_brokers(), []

    def failing():
        raise OSError("API away")

    _, written = run(store, THREE, NOW, pods=failing, log=lambda m, **kv: logged.append(m))
    assert written == {} and "pods not listed" in logged
