"""Which metadata mode a Kafka cluster runs in, read from what its brokers report.

The signal: ApiVersions (version 3 and later) lists the cluster's finalized features, and
``metadata.version`` is finalized in every KRaft cluster (it is the version of the metadata
log, set when the storage is formatted) and in no ZooKeeper-mode cluster. Every client sends
ApiVersions when it connects, no setting a user writes can make it wrong, and it answers the
same on every broker (unlike DescribeCluster's controller id, which a KRaft broker picks at
random among the brokers).

- :func:`mode_of` (pure): the mode from the names of the finalized features.
- :func:`api_versions_request`: the request to send (version 3 at least, so the features are
  in the answer); :func:`mode_of_answer`: the mode from its answer.
- :func:`describe_mode`: the same through kafka-python's ``KafkaAdminClient``.

What the modes change for the agents is in their READMEs (the user agent routes its requests
by it; the topic agent sends the same requests in both).
"""

from __future__ import annotations

from collections.abc import Iterable

import kafka.errors as Errors
from kafka.protocol.metadata import ApiVersionsRequest

__all__ = [
    "KRAFT",
    "ZOOKEEPER",
    "api_versions_request",
    "describe_mode",
    "mode_of",
    "mode_of_answer",
]

ZOOKEEPER, KRAFT = "zookeeper", "kraft"
METADATA_VERSION = "metadata.version"
CLIENT_NAME = "kairn"


def mode_of(finalized_features: Iterable[str]) -> str:
    """``kraft`` when ``metadata.version`` is among the finalized features, else ``zookeeper``."""
    return KRAFT if METADATA_VERSION in set(finalized_features) else ZOOKEEPER


def api_versions_request(client_version: str = "1") -> ApiVersionsRequest:
    """ApiVersions at version 3 or later: earlier versions carry no features."""
    return ApiVersionsRequest(
        client_software_name=CLIENT_NAME, client_software_version=client_version, min_version=3
    )


def mode_of_answer(response) -> str:
    """The mode from an ApiVersions answer; an error of the request raises."""
    if response.error_code:
        raise Errors.for_code(response.error_code)("ApiVersions failed")
    epoch = response.finalized_features_epoch
    if epoch is not None and epoch < 0:  # the broker does not know the features (yet)
        return ZOOKEEPER
    return mode_of(f.name for f in response.finalized_features or [])


def describe_mode(admin) -> str:
    """The mode of the cluster a kafka-python ``KafkaAdminClient`` talks to."""
    features = admin.describe_features()
    return mode_of(name for name, about in features.items() if "finalized" in about)
