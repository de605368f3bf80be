"""Topic set-up before a worker starts: every topic exists, co-partitioned.

A seller's state lives in one partition number across all input topics, the internal
topics and the tables' changelogs, so they must all have `WARDEN_PARTITIONS` partitions.
Missing topics are created; an existing input topic with another count stops start-up
with a message that says which topic and what to do.
"""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

from streams import topics as T
from streams.settings import Settings


class TopicLayoutError(RuntimeError):
    """Topics exist with partition counts that break co-partitioning."""


def ensure_topics(settings: Settings, timeout: float = 15.0) -> list[str]:
    """Create the missing contract and internal topics; return the names created."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
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
    missing = [
        NewTopic(settings.topic(name), num_partitions=settings.partitions,
                 config={"cleanup.policy": "compact"} if name in T.COMPACTED else {})
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
