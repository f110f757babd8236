"""Least privilege per role, as Kafka ACLs (pure: what to grant; `credentials` applies it).

The broker denies whatever no ACL allows (`allow.everyone.if.no.acl.found=false`); `admin`
is the one super user. A role's grants are for one namespace (the physical topic names and
group names of that environment):

| role     | may                                                                              |
|----------|----------------------------------------------------------------------------------|
| agent    | write the raw event topics (idempotently); nothing else: no read, no other topic |
| gateway  | write the raw event topics and the DLQ; read the token registry                  |
| worker   | read the raw topics and the aggregates; write the derived topics, lost outcomes, |
|          | late events and the DLQ; its own internal topics and groups (its app id prefix), |
|          | which it may create (faust declares them)                                        |
| sink     | read everything it lands (raw, derived, late); write the DLQ; its groups         |
| notifier | read the alerts; write the DLQ; its group                                        |
| reader   | nothing on Kafka (a ClickHouse reader: queries, Grafana)                         |
| admin    | everything (create and delete topics, manage credentials and ACLs)               |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from schemas.topics import (
    AGENT_STATE,
    AGGREGATES,
    ALERTS,
    DLQ,
    EVENT_TOPICS,
    GATEWAY_TOKENS,
    LATE,
    OUTCOMES,
    SESSIONS,
    TOPICS,
)

ROLES = ("agent", "gateway", "worker", "sink", "notifier", "reader", "admin")
Resource = Literal["topic", "group", "cluster"]
Pattern = Literal["literal", "prefixed"]


@dataclass(frozen=True)
class Grant:
    """Allow `operation` on a resource (name literal or a prefix)."""

    resource: Resource
    name: str
    pattern: Pattern
    operation: str  # Kafka's AclOperation name: READ, WRITE, DESCRIBE, CREATE, ALL ...


@dataclass(frozen=True)
class Names:
    """The physical names one environment (namespace) uses."""

    namespace: str
    worker_app_id: str
    sink_group: str
    notifier_group: str

    def topic(self, logical: str) -> str:
        return self.namespace + logical


def _topics(names: Names, logicals: tuple[str, ...], *operations: str) -> list[Grant]:
    return [Grant("topic", names.topic(t), "literal", op) for t in logicals for op in operations]


def grants(role: str, names: Names) -> list[Grant]:
    """What `role` may do in the environment `names` describes (each grant once)."""
    return list(dict.fromkeys(_grants(role, names)))


def _grants(role: str, names: Names) -> list[Grant]:
    raw = EVENT_TOPICS
    derived = (AGGREGATES, AGENT_STATE, ALERTS, SESSIONS)
    if role == "agent":
        return [*_topics(names, raw, "WRITE", "DESCRIBE"),
                Grant("cluster", "kafka-cluster", "literal", "IDEMPOTENT_WRITE")]
    if role == "gateway":
        return [*_topics(names, (*raw, DLQ), "WRITE", "DESCRIBE"),
                *_topics(names, (GATEWAY_TOKENS,), "READ", "DESCRIBE"),
                Grant("cluster", "kafka-cluster", "literal", "IDEMPOTENT_WRITE")]
    if role == "worker":
        app = names.worker_app_id
        return [*_topics(names, (*raw, AGGREGATES), "READ", "DESCRIBE"),
                *_topics(names, (*derived, LATE, DLQ, OUTCOMES), "WRITE", "DESCRIBE"),
                Grant("topic", app, "prefixed", "ALL"),
                Grant("group", app, "prefixed", "ALL"),
                Grant("cluster", "kafka-cluster", "literal", "IDEMPOTENT_WRITE")]
    if role == "sink":
        lands = tuple(t for t in TOPICS if t not in (DLQ, GATEWAY_TOKENS))
        return [*_topics(names, lands, "READ", "DESCRIBE"),
                *_topics(names, (DLQ,), "WRITE", "DESCRIBE"),
                Grant("group", names.sink_group, "prefixed", "READ"),
                Grant("cluster", "kafka-cluster", "literal", "IDEMPOTENT_WRITE")]
    if role == "notifier":
        return [*_topics(names, (ALERTS,), "READ", "DESCRIBE"),
                *_topics(names, (DLQ,), "WRITE", "DESCRIBE"),
                Grant("group", names.notifier_group, "literal", "READ"),
                Grant("cluster", "kafka-cluster", "literal", "IDEMPOTENT_WRITE")]
    if role == "reader":
        return []
    if role == "admin":
        return [Grant("topic", "*", "literal", "ALL"), Grant("group", "*", "literal", "ALL"),
                Grant("cluster", "kafka-cluster", "literal", "ALL")]
    raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
