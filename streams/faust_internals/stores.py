"""The tables' stores and their recovery, as Warden reaches into them."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any, cast

from faust.serializers import codecs
from faust.stores.memory import Store as MemoryStore
from faust.streams import _current_event
from faust.types import TP


class _PartitionEvent:
    """What Faust's RocksDB store asks of the current event: the partition it belongs to."""

    class _Message:
        def __init__(self, partition: int) -> None:
            self.partition = partition
            self.topic = None

    def __init__(self, partition: int) -> None:
        self.message = self._Message(partition)


_EVENTS: dict[int, _PartitionEvent] = {}  # one stand-in a partition, held (the current event is a weak reference)


def set_current_partition(partition: int) -> None:
    """Make a stand-in event of `partition` Faust's current event: a RocksDB store writes
    the database of that partition."""
    event = _EVENTS.get(partition)
    if event is None:
        event = _EVENTS[partition] = _PartitionEvent(partition)
    _current_event.set(weakref.ref(event))  # type: ignore[arg-type]  # a stand-in, as read by the store


def current_event_set() -> bool:
    return _current_event.get(None) is not None


def is_memory_store(store: Any) -> bool:
    """Whether a table's store is Faust's memory store (a dict), not a persistent one."""
    return isinstance(store, MemoryStore)


def memory_dict(store: Any, kind: type, make: Callable[[dict[Any, Any]], dict[Any, Any]]) -> dict[Any, Any]:
    """A memory store's dict, replaced once by `make(dict)` (of class `kind`: a dict that
    also notes the core's writes): the store itself, its recovery and Warden then share
    that one dict."""
    data: dict[Any, Any] = store.data
    if not isinstance(data, kind):
        data = store.data = make(data)
    return data


def clear_memory_store(store: Any) -> None:
    """Empty a memory store: its values and which partition each key came from."""
    dict.clear(store.data)
    key_partitions(store).clear()


def key_partitions(store: Any) -> dict[Any, int]:
    """A memory store's key -> changelog partition (what its recovery prunes by)."""
    return store._key_partition  # type: ignore[no-any-return]


def rocksdb_items(store: Any, partitions: set[int] | None) -> Iterator[tuple[bytes, bytes]]:
    """Every (raw key, raw value) a RocksDB store holds for `partitions` (None: all)."""
    for partition, db in list(store._dbs.items()):
        if partitions is not None and partition not in partitions:
            continue
        yield from store._visible_items(db)


def rocksdb_get(store: Any, partition: int, raw_key: bytes) -> bytes | None:
    """The raw value a RocksDB store holds for `raw_key` in the database of `partition`."""
    return store._db_for_partition(partition).get(raw_key)  # type: ignore[no-any-return]


def rocksdb_options(store_url: Any) -> dict[str, Any]:
    """A table's store options (Faust passes them to RocksDBOptions) bounding its memory:
    Faust's defaults give every database (a table's partition: 24 at 4 partitions) a
    2 GiB block cache of its own and three 64 MiB write buffers. Here 1 MiB of block cache
    (a read the cache misses comes from the page cache, which is not the process's) and two
    2 MiB write buffers: at most 5 MiB a database. Empty for a memory store."""
    if not str(store_url).startswith("rocksdb"):
        return {}
    return {"block_cache_size": 1 << 20, "write_buffer_size": 2 << 20,
            "max_write_buffer_number": 2}


def local_partitions(store: Any) -> list[int]:
    """The partitions whose RocksDB database `store` has open."""
    return sorted(store._dbs)


def rocksdb_write(store: Any, partition: int, batch: Any) -> None:
    """Write a rocksdict WriteBatch to the database of `partition`."""
    store._db_for_partition(partition).write(batch)


def codec_loads(serializer: Any) -> Any:
    """The codec's own decoding, without Faust's wrapper when it has no nested codecs."""
    codec: Any = codecs.get_codec(serializer)
    return codec._loads if tuple(codec.nodes) == (codec,) else codec.loads


def end_recovery(app: Any) -> None:
    """Tell Faust's recovery it is complete (what its own changelog reader does)."""
    recovery = app.tables.recovery
    recovery.flush_buffers()
    recovery._set_recovery_ended()
    recovery.signal_recovery_end.set()


def recover_from_the_start(app: Any) -> None:
    """Make the next recovery read every changelog partition from its start (or, for a
    persistent store, from the offset the store holds): Faust otherwise resumes a partition
    it keeps through a rebalance from where it last read, assuming its store still holds
    everything before; after the in-memory tables were dropped (a fenced worker), it does not."""
    recovery = app.tables.recovery
    recovery.active_offsets.clear()
    recovery.standby_offsets.clear()
    recovery.active_highwaters.clear()
    recovery.standby_highwaters.clear()


def new_changelog_topic(table: Any) -> Any:
    """The table's changelog topic made again (after its serializers changed)."""
    return table._new_changelog_topic()


def open_local_partitions(store: Any, partitions: int) -> Iterator[int]:
    """Open the RocksDB database of every partition this worker's data directory holds
    (a restart's, before the group assigns it anything). Faust opens a partition's database
    when it is assigned, tens of ms each, six tables' worth per partition, after the join;
    one already open is used as it is. A partition assigned elsewhere stays open, unused.
    Yields each partition once its database is open (the caller may yield to the loop
    between them)."""
    import os

    for partition in range(partitions):
        if partition not in store._dbs and os.path.isdir(store.partition_path(partition)):
            store._db_for_partition(partition)
            yield partition


# --- the tables' recovery, as streams.table_restore applies a fetch at a time -----------------

def recovery_offsets(app: Any, tp: TP) -> dict[TP, int] | None:
    """The recovery's offsets (what it has applied, per partition) that `tp` counts in: the
    active or the standby ones; None if `tp` is no changelog partition recovered here."""
    recovery = app.tables.recovery
    if recovery.tp_to_table.get(tp) is None:
        return None
    if tp in recovery.active_tps:
        return recovery.active_offsets  # type: ignore[no-any-return]
    if tp in recovery.standby_tps:
        return recovery.standby_offsets  # type: ignore[no-any-return]
    return None


def changelogs_read_up(app: Any) -> bool:
    """Whether a recovery under way has read every active changelog partition to its end."""
    recovery = app.tables.recovery
    return bool(recovery.in_recovery and not recovery.need_recovery())


def recovering_actives(app: Any) -> set[TP]:
    """The active changelog partitions of the recovery."""
    return set(app.tables.recovery.active_tps)


class _Message:
    """What a store's apply_changelog_batch reads of a changelog record."""

    __slots__ = ("key", "offset", "partition", "tp", "value")

    def __init__(self, tp: TP, record: Any) -> None:
        self.tp, self.partition, self.offset = tp, tp.partition, record.offset
        self.key, self.value = record.key, record.value


class _Change:
    """A changelog record as a store applies it: raw message, decoded key and value."""

    __slots__ = ("key", "message", "value")

    def __init__(self, message: _Message, key: Any, value: Any) -> None:
        self.message, self.key, self.value = message, key, value


def apply_to_table(app: Any, tp: TP, records: list[Any]) -> None:
    """Apply changelog records of `tp` to its table's store (none: nothing), as the
    store's `apply_changelog_batch` would, without an event per record."""
    recovery = app.tables.recovery
    table = recovery.tp_to_table.get(tp)
    if table is None:
        return
    load_key, load_value = codec_loads(table.key_serializer), codec_loads(table.value_serializer)
    store = table.data
    buffered = recovery.buffers.get(table)
    if buffered:  # what Faust's path buffered for this table comes first
        table.apply_changelog_batch(buffered)
        buffered.clear()
    if is_memory_store(store):
        # what MemoryStore.apply_changelog_batch does, without an event per record; through
        # dict's own methods, so a DirtyDict does not take recovery for writes
        data = cast(dict[Any, Any], store.data)  # a dict (a DirtyDict, written past its noting)
        key_partition, partition = key_partitions(store), tp.partition
        put, pop = dict.__setitem__, dict.pop
        for r in records:
            key = load_key(r.key)
            if r.value is None:
                pop(data, key, None)
                key_partition.pop(key, None)
            else:
                put(data, key, load_value(r.value))
                key_partition[key] = partition
    else:  # a persistent store writes the raw bytes
        table.apply_changelog_batch([_Change(_Message(tp, r), None, None) for r in records])
