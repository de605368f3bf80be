"""The tables' stores and their recovery, as Warden reaches into them."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

from faust.serializers import codecs
from faust.streams import _current_event


def set_current_partition(event: Any) -> None:
    """Make `event` (with .message.partition) Faust's current event: a RocksDB store writes
    the database of that partition."""
    _current_event.set(weakref.ref(event))


def current_event_set() -> bool:
    return _current_event.get(None) is not None


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


def end_recovery(recovery: Any) -> None:
    """Tell Faust's recovery it is complete (what its own changelog reader does)."""
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

