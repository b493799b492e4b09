"""The ACL vocabulary of a user spec (pure): Strimzi's names, Kafka's names and numbers.

- the tables: Strimzi's resource types and operations -> kafka-python's enum names, the labels
  messages use, the operations Kafka's own kafka-acls tool allows per resource type;
- :class:`AclRule`: one ACL of a user, in Kafka's terms;
- :func:`acl_of`: an AclRule as the protocol's tuple (ints and strings), what the Kafka
  adapter sends and what it reads back, so wanted and held ACLs compare as sets.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka.admin import ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourceType

# Strimzi's names -> Kafka's (kafka-python's ResourceType / ACLOperation enum names)
RESOURCE_TYPES = {
    "topic": "TOPIC",
    "group": "GROUP",
    "cluster": "CLUSTER",
    "transactionalid": "TRANSACTIONAL_ID",
}
RESOURCE_LABELS = {
    "TOPIC": "topic",
    "GROUP": "group",
    "CLUSTER": "cluster",
    "TRANSACTIONAL_ID": "transactionalId",
}
OPERATIONS = {
    "read": "READ",
    "write": "WRITE",
    "create": "CREATE",
    "delete": "DELETE",
    "alter": "ALTER",
    "describe": "DESCRIBE",
    "clusteraction": "CLUSTER_ACTION",
    "describeconfigs": "DESCRIBE_CONFIGS",
    "alterconfigs": "ALTER_CONFIGS",
    "idempotentwrite": "IDEMPOTENT_WRITE",
    "all": "ALL",
}
OPERATION_LABELS = {
    "READ": "Read",
    "WRITE": "Write",
    "CREATE": "Create",
    "DELETE": "Delete",
    "ALTER": "Alter",
    "DESCRIBE": "Describe",
    "CLUSTER_ACTION": "ClusterAction",
    "DESCRIBE_CONFIGS": "DescribeConfigs",
    "ALTER_CONFIGS": "AlterConfigs",
    "IDEMPOTENT_WRITE": "IdempotentWrite",
    "ALL": "All",
}
# the operations Kafka's own kafka-acls tool allows for each resource type
VALID_OPERATIONS = {
    "TOPIC": {
        "READ",
        "WRITE",
        "CREATE",
        "DESCRIBE",
        "DELETE",
        "ALTER",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
        "ALL",
    },
    "GROUP": {"READ", "DESCRIBE", "DELETE", "ALL"},
    "CLUSTER": {
        "CREATE",
        "CLUSTER_ACTION",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
        "IDEMPOTENT_WRITE",
        "ALTER",
        "DESCRIBE",
        "ALL",
    },
    "TRANSACTIONAL_ID": {"DESCRIBE", "WRITE", "ALL"},
}
PATTERNS = {"literal": "LITERAL", "prefix": "PREFIXED"}
CLUSTER_NAME = "kafka-cluster"


@dataclass(frozen=True, order=True)
class AclRule:
    """One ACL of the user, in Kafka's terms (enum names of kafka-python's ACL types)."""

    resource_type: str  # TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID
    name: str
    pattern: str  # LITERAL, PREFIXED
    operation: str  # READ, WRITE, ...
    permission: str  # ALLOW, DENY
    host: str = "*"

    def describe(self) -> str:
        return (
            f"{self.permission.lower()} {OPERATION_LABELS.get(self.operation, self.operation)} "
            f"on {RESOURCE_LABELS.get(self.resource_type, self.resource_type)} "
            f"{self.name} ({self.pattern.lower()}) from {self.host}"
        )


def acl_of(principal: str, r: AclRule) -> tuple:
    """The protocol's view of an ACL: (resource_type, name, pattern, principal, host, op, perm)
    as ints and strings."""
    return (
        int(ResourceType[r.resource_type]),
        r.name,
        int(ACLResourcePatternType[r.pattern]),
        principal,
        r.host,
        int(ACLOperation[r.operation]),
        int(ACLPermissionType[r.permission]),
    )
