"""The agents' /metrics over HTTP, from a real kairn-topic-agent against the real API server and
Kafka cluster: reconciles count, an Error resource shows in kairn_resources{state="Error"} and
leaves it when fixed, certificate expiry is served, and every kairn_* metric that the chart's
alerts and dashboard query is in the scrape."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.metric_names import used_names

from .helpers import wait_for
from .test_topic_agent import (  # noqa: F401 (start_agent and topic are fixtures)
    cm_body,
    http_get,
    set_spec,
    start_agent,
    topic,
    wait_state,
)

pytestmark = pytest.mark.kafka


def scrape(agent) -> dict[str, list]:
    code, text = http_get(agent, "/metrics")
    assert code == 200, text
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_reconciles_count_and_an_error_resource_shows_in_the_gauge(
    core,
    namespace,
    start_agent,  # noqa: F811 (the fixture imported above)
    topic,  # noqa: F811
):
    agent = start_agent()
    before = scrape(agent)
    core.create_namespaced_config_map(namespace, cm_body("good", {"topicName": topic("good")}))
    wait_state(core, namespace, "good", "Ready")

    def counted():
        now = scrape(agent)
        return (
            value(now, "kairn_reconciliations_total", agent="topic", result="ready")
            >= value(before, "kairn_reconciliations_total", agent="topic", result="ready") + 1
            and value(now, "kairn_kafka_requests_total", agent="topic", result="ok")
            > value(before, "kairn_kafka_requests_total", agent="topic", result="ok")
            and value(now, "kairn_reconcile_duration_seconds_count", agent="topic")
            > value(before, "kairn_reconcile_duration_seconds_count", agent="topic")
            and value(now, "kairn_resources", agent="topic", state="Ready") == 1
        )

    wait_for("the reconcile in the counters", counted)

    core.create_namespaced_config_map(namespace, cm_body("broken", "partitions: [1, 2"))
    wait_state(core, namespace, "broken", "Error", "InvalidYAML")
    wait_for(
        "the Error resource in kairn_resources",
        lambda: value(scrape(agent), "kairn_resources", agent="topic", state="Error") == 1,
    )
    assert value(scrape(agent), "kairn_reconciliations_total", agent="topic", result="error") >= 1

    set_spec(core, namespace, "broken", {"topicName": topic("fixed")})
    wait_state(core, namespace, "broken", "Ready")
    wait_for(
        "the fixed resource out of Error",
        lambda: (
            value(scrape(agent), "kairn_resources", agent="topic", state="Error") == 0
            and value(scrape(agent), "kairn_resources", agent="topic", state="Ready") == 2
        ),
    )


def test_certificate_expiry_is_served(start_agent):  # noqa: F811
    agent = start_agent()
    expiry = {
        s.labels["certificate"]: s.value
        for s in scrape(agent)["kairn_certificate_expiry_timestamp_seconds"]
    }
    assert set(expiry) == {"agents", "cluster-ca"}
    # the harness issues them fresh: valid for a while yet
    assert all(t > time.time() + 86400 for t in expiry.values()), expiry


def test_every_agent_metric_of_the_alerts_and_dashboard_exists(
    core,
    namespace,
    start_agent,  # noqa: F811
    topic,  # noqa: F811
):
    agent = start_agent()
    core.create_namespaced_config_map(namespace, cm_body("n1", {"topicName": topic("n1")}))
    core.create_namespaced_config_map(namespace, cm_body("n2", "partitions: [1"))
    wait_state(core, namespace, "n1", "Ready")
    wait_state(core, namespace, "n2", "Error", "InvalidYAML")
    # a labelled gauge the agent has no sample of yet (kairn_tenant_resources_left before any
    # tenant is removed) is still served: its TYPE line is there
    _, text = http_get(agent, "/metrics")
    scraped = set(scrape(agent)) | {f.name for f in text_string_to_metric_families(text)}
    wanted = {n: w for n, w in used_names().items() if n.startswith("kairn_")}
    assert wanted, "no kairn_* metric found in the alerts and dashboard"
    missing = {n: sorted(w) for n, w in wanted.items() if n not in scraped}
    assert not missing, f"used but not served by the agent: {missing}"
