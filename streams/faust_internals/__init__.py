"""Every reach into Faust's and aiokafka's internals, in this one package.

Warden relies on a few private names of faust-streaming 0.15.3 and aiokafka 0.14.0 (both
pinned): the consumer's drain loop and ack bookkeeping, the table stores' partitions, the
recovery's end, the current event's partition, a heartbeat request. Each is reached only
from here, ruff's private-access rule (SLF) checks that nothing else does, and
`tests/unit/streams/test_faust_internals.py` checks that every name relied on still exists
with the expected shape, so an upgrade fails loudly in one place.

The batch path. Faust hands every record to its agents one at a time: a `Message` and an
`Event` are built, the conductor awaits flow control and the producer buffer, the record
is put on the agent's queue, the stream takes it off, and the drain loop awaits all that
through `wait_first`, which schedules a task per record: more than Warden's whole decision
path costs (the bench's (b), README "Figures"). `BatchConsumer`
keeps everything Faust's consumer does around the records (the group, rebalancing,
pausing, recovery of the tables' changelogs, offset commits) and changes only how the
records of the topics given to `route_batches` reach their handler: as aiokafka returns
them, one list per partition, in one call per fetch. Records of every other topic (the
changelogs while tables recover) take Faust's own path. The handler acknowledges what it
has processed with `Acks`, which does what `Consumer.ack` does for a message, so Faust
commits exactly those offsets. The handler may give the event loop a turn between records
(a fetch of thousands would block it for a quarter of a second); after each turn it asks
`batch_current` and stops if a rebalance has begun, its records left unacknowledged to be
read again. So no rebalance lands in the middle of a record.

The package's modules: `consumer` (the batch path, acks, the consumer's state), `app`
(the app, transport, producer and table manager), `group` (the rebalance generation, the
active partitions, the recovery's progress), `stores` (the tables' stores and their
recovery). Import from the package.
"""

from streams.faust_internals.app import (
    BatchTransport,
    CheckpointProducer,
    QuickTableManager,
    WardenApp,
    route_batches,
    route_changelogs,
    use_fetch_max_wait,
    use_no_scan_marks,
)
from streams.faust_internals.consumer import (
    Acks,
    Batch,
    BatchConsumer,
    BatchHandler,
    Boundaries,
    batch_boundary,
    batch_current,
    committed_offset,
    fetch_position,
    fetch_state,
    group_join_begun,
    membership_lost,
    sought_offsets,
    use_join_marker,
    use_quick_commit_offsets,
)
from streams.faust_internals.group import (
    active_partitions,
    changelog_topic_name,
    rebalance_generation,
    rebalancing,
    recovery_completed,
    restore_remaining,
    session_timeout,
)
from streams.faust_internals.stores import (
    apply_to_table,
    changelogs_read_up,
    clear_memory_store,
    codec_loads,
    current_event_set,
    end_recovery,
    is_memory_store,
    key_partitions,
    local_partitions,
    memory_dict,
    new_changelog_topic,
    open_local_partitions,
    recover_from_the_start,
    recovering_actives,
    recovery_offsets,
    rocksdb_get,
    rocksdb_items,
    rocksdb_options,
    rocksdb_write,
    set_current_partition,
)

__all__ = [
    "Acks",
    "Batch",
    "BatchConsumer",
    "BatchHandler",
    "BatchTransport",
    "Boundaries",
    "CheckpointProducer",
    "QuickTableManager",
    "WardenApp",
    "active_partitions",
    "apply_to_table",
    "batch_boundary",
    "batch_current",
    "changelog_topic_name",
    "changelogs_read_up",
    "clear_memory_store",
    "codec_loads",
    "committed_offset",
    "current_event_set",
    "end_recovery",
    "fetch_position",
    "fetch_state",
    "group_join_begun",
    "is_memory_store",
    "key_partitions",
    "local_partitions",
    "membership_lost",
    "memory_dict",
    "new_changelog_topic",
    "open_local_partitions",
    "rebalance_generation",
    "rebalancing",
    "recover_from_the_start",
    "recovering_actives",
    "recovery_completed",
    "recovery_offsets",
    "restore_remaining",
    "rocksdb_get",
    "rocksdb_items",
    "rocksdb_options",
    "rocksdb_write",
    "route_batches",
    "route_changelogs",
    "session_timeout",
    "set_current_partition",
    "sought_offsets",
    "use_fetch_max_wait",
    "use_join_marker",
    "use_no_scan_marks",
    "use_quick_commit_offsets",
]
