"""The Faust tables holding the core's state live, each with a changelog topic.

Faust is kept for what it does well here: the tables' stores (memory or RocksDB), their
changelog topics, recovery from them on start and rebalance, and partition assignment
with the input topics. Writes do not go through `Table.__setitem__`, which sends one
changelog record per write through Faust's producer buffer and aiokafka (three or four a
event, a quarter of a busy worker's time). The core writes a `ChangelogStore` instead: the
table's own store, written through, and the changed keys noted per partition. Before
offsets are committed (`Changelogs.produce_pending`, chained onto the producer flush that
Faust's commit awaits) each changed key's newest value is produced once to the changelog
through librdkafka, as Kafka Streams' record cache does. So the changelog always holds
the state of every committed record; a record replayed after a crash finds its own
effect there at most, which the core's idempotent updates absorb.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Iterator, MutableMapping

from faust.serializers import codecs
from faust.stores.memory import Store as MemoryStore
from faust.streams import _current_event
from faust.types import TP

from tables.codecs import register_codecs
from tables.engine import Stores

Produce = Callable[..., None]  # confluent_kafka.Producer.produce


class _PartitionEvent:
    """What Faust's RocksDB store asks of the current event: the partition it belongs to."""

    class _Message:
        def __init__(self, partition: int) -> None:
            self.partition = partition
            self.topic = None

    def __init__(self, partition: int) -> None:
        self.message = self._Message(partition)


class DirtyDict(dict):  # type: ignore[type-arg]
    """A memory store's own dict that also notes the core's writes for the changelog: reads
    stay plain dict reads. Only `[]=` and `del` are noted (the core writes nothing else);
    Faust's recovery fills and prunes the dict with update() and pop(), which are not."""

    __slots__ = ("changelogs", "dirty")

    def __init__(self, content: Any, changelogs: Changelogs, dirty: dict[tuple[int, str], Any]) -> None:
        super().__init__(content)
        self.changelogs = changelogs
        self.dirty = dirty

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self, key, value)
        self.dirty[(self.changelogs.partition, key)] = value

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self, key)
        self.dirty[(self.changelogs.partition, key)] = None


class ChangelogStore(MutableMapping[str, Any]):
    """One table as the core sees it: the table's store, and the keys changed since the
    last changelog flush (newest value, or None for a deletion), by partition."""

    def __init__(self, table: Any, changelogs: Changelogs) -> None:
        self.table = table
        self.changelogs = changelogs
        self.dirty: dict[tuple[int, str], Any] = {}
        self._data: MutableMapping[str, Any] | None = None

    @property
    def data(self) -> MutableMapping[str, Any]:
        """The table's store: for the memory store its dict itself (what Faust writes too),
        made a DirtyDict."""
        if self._data is None:
            store = self.table.data
            if isinstance(store, MemoryStore):
                if not isinstance(store.data, DirtyDict):
                    store.data = DirtyDict(store.data, self.changelogs, self.dirty)
                self._data = store.data
            else:
                self._data = store
        return self._data

    def fast(self) -> MutableMapping[str, Any]:
        """What the core should write: the memory store's DirtyDict itself (dict-speed
        reads), or this wrapper over a persistent store."""
        data = self.data
        return data if isinstance(data, DirtyDict) else self

    # The core calls these for every event: each reads the resolved store directly.

    def __getitem__(self, key: str) -> Any:
        return (self._data if self._data is not None else self.data)[key]

    def get(self, key: str, default: Any = None) -> Any:
        return (self._data if self._data is not None else self.data).get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in (self._data if self._data is not None else self.data)

    def __setitem__(self, key: str, value: Any) -> None:
        (self._data if self._data is not None else self.data)[key] = value
        self.dirty[(self.changelogs.partition, key)] = value

    def __delitem__(self, key: str) -> None:
        del (self._data if self._data is not None else self.data)[key]
        self.dirty[(self.changelogs.partition, key)] = None

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def items(self) -> Any:
        return self.data.items()

    def values(self) -> Any:
        return self.data.values()


class Changelogs:
    """The changelog writes of all tables, produced before every offset commit."""

    def __init__(self) -> None:
        self.stores: list[ChangelogStore] = []
        self.partition = 0
        self._events: dict[int, _PartitionEvent] = {}
        self._persist: dict[tuple[int, int], int] = {}  # (store index, partition) -> offset
        self.produced = 0

    def at(self, partition: int) -> None:
        """The partition whose record is handled now: its writes go to that changelog
        partition (the tables are co-partitioned with the inputs), and a RocksDB store
        writes that partition's database."""
        if partition != self.partition or _current_event.get(None) is None:
            self.partition = partition
            event = self._events.get(partition)
            if event is None:
                event = self._events[partition] = _PartitionEvent(partition)
            _current_event.set(weakref.ref(event))  # type: ignore[arg-type]

    def pending(self) -> int:
        return sum(len(s.dirty) for s in self.stores)

    def produce_pending(self, produce: Produce) -> list[tuple[Any, ...]]:
        """Hand every changed key's newest value to `produce`, except the last one of each
        changelog partition, which is returned: produce those once the rest is on the
        broker. So every flush ends each partition with a batch of one record, and the
        high watermark is right even on a broker that reports it as the last batch's base
        offset + 1 (Tansu does): recovery reads a changelog up to its high watermark."""
        held: list[tuple[Any, ...]] = []
        for index, store in enumerate(self.stores):
            if not store.dirty:
                continue
            dirty = store.dirty.copy()  # the same dict stays shared with the store's DirtyDict
            store.dirty.clear()
            table = store.table
            topic = table.changelog_topic.get_topic_name()
            dump_key = codecs.get_codec(table.key_serializer).dumps
            dump_value = codecs.get_codec(table.value_serializer).dumps
            persists = not isinstance(table.data, MemoryStore)
            last = {}  # changelog partition -> its last changed key
            for changed in dirty:
                last[changed[0]] = changed
            for changed, value in dirty.items():
                partition, key = changed
                raw = None if value is None else dump_value(value)
                delivered = self._delivered(index, partition) if persists else None
                if last[partition] == changed:
                    held.append((topic, raw, dump_key(key), partition, delivered))
                else:
                    produce(topic, raw, dump_key(key), partition=partition, on_delivery=delivered)
            self.produced += len(dirty)
        return held

    def produce_last(self, produce: Produce, held: list[tuple[Any, ...]]) -> None:
        for topic, value, key, partition, on_delivery in held:
            produce(topic, value, key, partition=partition, on_delivery=on_delivery)

    def _delivered(self, index: int, partition: int) -> Callable[[Any, Any], None]:
        def delivered(err: Any, msg: Any) -> None:
            if err is None:
                key = (index, partition)
                if msg.offset() > self._persist.get(key, -1):
                    self._persist[key] = msg.offset()
        return delivered

    def persist_offsets(self) -> None:
        """After the changelog records are on the broker: tell a persistent store (RocksDB)
        how far its changelog partitions are applied, so recovery starts from there."""
        persist, self._persist = self._persist, {}
        for (index, partition), offset in persist.items():
            table = self.stores[index].table
            table.data.set_persisted_offset(TP(table.changelog_topic.get_topic_name(), partition), offset)


def bind_fast(stores: Stores) -> None:
    """Point the core at its tables' fastest views (ChangelogStore.fast), once the tables'
    stores exist (after their recovery)."""
    for name in ("orders", "sellers", "defect_buyers", "evidence", "clocks", "enforcement"):
        current = getattr(stores, name)
        if isinstance(current, ChangelogStore):
            setattr(stores, name, current.fast())


def declare_tables(app: Any, partitions: int) -> tuple[Stores, Changelogs]:
    """Declare Warden's tables on `app`, co-partitioned with the input topics."""
    register_codecs()
    changelogs = Changelogs()

    def table(name: str, codec: str) -> ChangelogStore:
        t = app.Table(name, partitions=partitions, key_type=str)
        # Faust derives changelog serializers from types; ours are codecs. The store is
        # made lazily and reads them then; the changelog topic was made when the table
        # registered (with JSON), so make it again: recovery decodes with its schema.
        t.key_serializer = "utf8"
        t.value_serializer = codec
        t.changelog_topic = t._new_changelog_topic()
        store = ChangelogStore(t, changelogs)
        changelogs.stores.append(store)
        return store

    return Stores(
        orders=table("orders", "warden-order"),
        sellers=table("sellers", "warden-seller"),
        defect_buyers=table("defect-buyers", "json"),
        evidence=table("evidence", "json"),
        clocks=table("clocks", "json"),
        enforcement=table("enforcement", "warden-history"),
    ), changelogs
