"""The Faust app of a worker and its topics, made from the settings (nothing at import).

Start-up is tuned for a fast join (CONTRACT §1, ready in a few seconds) with values Apache
Kafka accepts (its `group.min.session.timeout.ms` is 6 s). Tansu 0.6 holds a JoinGroup for
half the session timeout (at least 3 s, as Kafka's `group.initial.rebalance.delay.ms` does
for a new group), a static member's SyncGroup for 3 s more, and drops a follower whose
first heartbeat comes later than a session timeout after its JoinGroup. So:
- a dynamic member (no WARDEN_INSTANCE_ID) takes the 6 s minimum: ready ~4 s after start;
- a static member takes 8 s with a 0.5 s heartbeat (3 + 3 + 0.5 s < 6 s would not hold:
  with 6 s two workers rebalanced every 7 s, each time under a new member id); it is
  ready ~3 s later, and a replacement takes a killed one's partitions back at once.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import faust

from streams.contract import topics as T
from streams.contract.settings import Settings
from streams.faust_internals import (
    QuickTableManager,
    WardenApp,
    use_fetch_max_wait,
    use_join_marker,
    use_no_scan_marks,
    use_quick_commit_offsets,
)


def broker_credentials(settings: Settings) -> Any:
    """Faust's (aiokafka's) TLS and SASL credentials from the settings; None for PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_location)
        if settings.kafka_ssl_certificate_location:
            context.load_cert_chain(settings.kafka_ssl_certificate_location, settings.kafka_ssl_key_location)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(username=settings.kafka_sasl_username, password=settings.kafka_sasl_password,
                                 ssl_context=context, mechanism=settings.kafka_sasl_mechanism)


def app_options(settings: Settings) -> dict[str, Any]:
    """The Faust settings of a Warden worker (also the benchmark's do-nothing baseline)."""
    return dict(
        broker=[f"kafka://{s}" for s in settings.kafka_bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(settings),
        store="rocksdb://" if settings.store == "rocksdb" else "memory://",
        datadir=settings.app_data_dir,
        web_port=settings.web_port,
        web_bind="127.0.0.1" if settings.kafka_bootstrap_servers.startswith("127.") else "0.0.0.0",
        web_host="127.0.0.1",
        web_in_thread=False,
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        broker_session_timeout=8.0 if settings.instance_id else 6.0,
        broker_heartbeat_interval=0.5,
        broker_rebalance_timeout=6.0,
        broker_request_timeout=30.0,
        broker_commit_every=100_000,  # and at most this many records apart while catching up
        broker_commit_interval=settings.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=settings.instance_id,
        producer_linger_ms=2,
        producer_acks=-1,
        stream_wait_empty=False,
        stream_buffer_maxsize=16_384,
        broker_max_poll_records=5_000,  # a fetch handled in one go blocks the loop for at most ~0.2 s
        table_cleanup_interval=3600.0,
        recovery_consistency_check=settings.recovery_check == "on",
        TableManager=QuickTableManager,
        logging_config=None,
    )


def build_app(settings: Settings) -> WardenApp:
    """The worker's Faust app (no connection is made until it starts)."""
    use_fetch_max_wait(settings.fetch_max_wait_ms)
    use_quick_commit_offsets()
    use_join_marker()
    use_no_scan_marks()
    return WardenApp(settings.consumer_group, **app_options(settings))


@dataclass(frozen=True)
class Topics:
    """The app's topics: every input on one co-partitioned stream, and the outputs by name."""

    inputs: faust.TopicT
    outputs: dict[str, faust.TopicT]


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    def raw(name: str, **kwargs: Any) -> faust.TopicT:
        return app.topic(settings.topic(name), key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw",
                         partitions=settings.partitions, **kwargs)

    # Everything a seller's state depends on arrives on one co-partitioned stream.
    inputs = app.topic(
        *[settings.topic(t) for t in (*T.INPUT_TOPICS, T.REKEYED, T.TICKS)],
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        partitions=settings.partitions,
    )
    outputs = {
        T.ENFORCEMENTS: raw(T.ENFORCEMENTS),
        T.NOTIFICATIONS: raw(T.NOTIFICATIONS),
        T.SELLER_METRICS: raw(T.SELLER_METRICS, compacting=True),
        T.DEAD_LETTER: raw(T.DEAD_LETTER),
        T.REKEYED: raw(T.REKEYED),
        T.TICKS: raw(T.TICKS),
    }
    return Topics(inputs, outputs)
