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
