"""Topic set-up before a worker starts: every topic exists, co-partitioned.

A seller's state lives in one partition number across all input topics, the internal
topics and the tables' changelogs, so they must all have `WARDEN_PARTITIONS` partitions.
Missing topics are created; an existing input topic with another count stops start-up
with a message that says which topic and what to do.
"""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

from streams.contract import topics as T
from streams.contract.settings import Settings


class TopicLayoutError(RuntimeError):
    """Topics exist with partition counts that break co-partitioning."""


def planned_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Every topic Warden uses, by full name, with its config: inputs, outputs and internal
    topics, and the tables' changelogs (compacted). All have WARDEN_PARTITIONS partitions."""
    plan: dict[str, dict[str, str]] = {}
    for name in T.INPUT_TOPICS:
        plan[settings.topic(name)] = {"retention.ms": str(T.RETENTION_MS["input"])}
    for name in T.OUTPUT_TOPICS:
        if name in T.COMPACTED:
            plan[settings.topic(name)] = {"cleanup.policy": "compact"}
        elif name == T.DEAD_LETTER:
            plan[settings.topic(name)] = {"retention.ms": str(T.RETENTION_MS["dead-letter"])}
        else:
            plan[settings.topic(name)] = {"retention.ms": str(T.RETENTION_MS["output"])}
    for name in (T.REKEYED, T.TICKS):
        plan[settings.topic(name)] = {"retention.ms": str(T.RETENTION_MS["internal"])}
    for table in T.TABLES:
        plan[f"{settings.consumer_group}-{table}-changelog"] = {"cleanup.policy": "compact"}
    return plan


def create_topics(settings: Settings, replication: int = -1, timeout: float = 30.0) -> tuple[list[str], list[str]]:
    """Create every planned topic that is missing, with its config (a topic-init job);
    (created, already there). An existing input topic with another partition count is an
    error (TopicLayoutError), as for a worker."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers, **settings.kafka_client_config()})
    existing = admin.list_topics(timeout=timeout).topics
    plan = planned_topics(settings)
    wrong = [f"{name} has {len(existing[name].partitions)}" for name in plan
             if name in existing and existing[name].error is None
             and len(existing[name].partitions) != settings.partitions]
    if wrong:
        raise TopicLayoutError(f"WARDEN_PARTITIONS={settings.partitions}, but {', '.join(wrong)} partitions")
    missing = [NewTopic(name, num_partitions=settings.partitions, replication_factor=replication, config=config)
               for name, config in plan.items() if name not in existing]
    created = []
    if missing:
        for name, future in admin.create_topics(missing, request_timeout=timeout).items():
            try:
                future.result()
                created.append(name)
            except Exception as exc:
                if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    return created, sorted(set(plan) - set(created))


def ensure_topics(settings: Settings, timeout: float = 15.0) -> list[str]:
    """Create the missing contract and internal topics; return the names created."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers, **settings.kafka_client_config()})
    existing = admin.list_topics(timeout=timeout).topics
    co_partitioned = (*T.INPUT_TOPICS, T.REKEYED, T.TICKS)
    wrong = []
    for name in co_partitioned:
        meta = existing.get(settings.topic(name))
        if meta is not None and meta.error is None and len(meta.partitions) != settings.partitions:
            wrong.append(f"{settings.topic(name)} has {len(meta.partitions)}")
    if wrong:
        raise TopicLayoutError(
            f"WARDEN_PARTITIONS={settings.partitions}, but {', '.join(wrong)} partitions: every input "
            "topic must have the same count (set WARDEN_PARTITIONS to it, or recreate the topics)")
    plan = planned_topics(settings)
    missing = [
        NewTopic(settings.topic(name), num_partitions=settings.partitions, config=plan[settings.topic(name)])
        for name in (*co_partitioned, *T.OUTPUT_TOPICS)
        if settings.topic(name) not in existing
    ]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except Exception as exc:  # created meanwhile by another worker: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc).lower():
                raise
    return created
