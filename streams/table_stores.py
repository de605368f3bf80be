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

import asyncio
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, NamedTuple

from faust.serializers import codecs
from faust.types import TP

from streams.checkpoints import CheckpointStaging, marker_key, marker_value
from streams.epochs import CHECKPOINT_HEADER, EPOCH_HEADER, EpochFence
from streams.faust_internals import (
    clear_memory_store,
    codec_loads,
    current_event_set,
    is_memory_store,
    local_partitions,
    memory_dict,
    rocksdb_get,
    rocksdb_items,
    rocksdb_write,
    set_current_partition,
)
from streams.observability import TABLE_READS
from streams.table_restore import apply_changelog

Produce = Callable[..., None]  # confluent_kafka.Producer.produce


class Taken(NamedTuple):
    """One table's changes taken by a checkpoint, encoded: (partition, raw key, raw value or
    None for a deletion) in the order they changed, each partition's last key, and the
    headers of each partition's records."""

    position: int  # the store's place in Changelogs.stores
    store: Any  # ChangelogStore
    records: list[tuple[int, bytes, bytes | None]]
    last: dict[int, bytes]
    headers: dict[int, list[tuple[str, bytes]]]


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
        # a persistent store's changes taken by a checkpoint and not yet written to it
        # (Changelogs.persist): what a read of an evicted key finds before the store
        self.unpersisted: dict[tuple[int, str], Any] = {}
        self._data: MutableMapping[str, Any] | None = None
        self.cache: BoundedCache | None = None  # a persistent store's values in use, decoded (fast())

    @property
    def data(self) -> MutableMapping[str, Any]:
        """The table's store: for the memory store its dict itself (what Faust writes too),
        made a DirtyDict."""
        if self._data is None:
            store = self.table.data
            if is_memory_store(store):
                self._data = memory_dict(store, DirtyDict,
                                         lambda data: DirtyDict(data, self.changelogs, self.dirty))
            else:
                self._data = store
        return self._data

    def loads(self) -> tuple[Callable[[bytes], Any], Callable[[bytes], Any]]:
        """The table's key and value decodings."""
        return codec_loads(self.table.key_serializer), codec_loads(self.table.value_serializer)

    def fast(self, active: set[int] | None = None,
             partition_of_key: Callable[[str], int] | None = None) -> MutableMapping[str, Any]:
        """What the core should read and write. For the memory store, its own dict (a
        DirtyDict: dict-speed reads). For a persistent store (RocksDB), a BoundedCache over
        the `active` partitions' databases: the values in use decoded, at most
        `Changelogs.cache_entries` of them; nothing is read ahead. `partition_of_key`: the
        partition whose database holds a key (else the partition of the record handled)."""
        data = self.data
        if isinstance(data, DirtyDict):
            return data
        partitions = set(local_partitions(data)) if active is None else set(active)
        changelogs = self.changelogs
        self.cache = BoundedCache(self, partitions, changelogs.cache_entries,
                                  partition_of_key or (lambda key: changelogs.partition))
        return self.cache

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


_MISSING: Any = object()


class BoundedCache(MutableMapping[str, Any]):
    """A persistent table as the core reads and writes it: the values in use, decoded, at
    most `capacity` of them; the rest stay in the partitions' RocksDB databases, read and
    decoded on demand, as Kafka Streams' and quix-streams' stores are. Memory stays flat
    as the state grows (10 million orders in the window are a few GiB on disk).

    Two generations: `hot` (used since the last ageing) and `cold` (the generation before);
    a read found in `cold` moves to `hot`; once `hot` holds half the capacity, between
    records (Changelogs.trim), it becomes `cold` and the old `cold` is dropped (`age`). A
    key absent from the store is held as None, so a new order's first read asks the disk
    once. A changed value is also in its store's `dirty` (to the next checkpoint) and then
    its `unpersisted` (until the checkpoint is written to the database): a read of a key
    dropped meanwhile finds it there before the database. A key is read from the database
    of its partition (`partition_of_key`: the tables are co-partitioned with the inputs)."""

    def __init__(self, store: ChangelogStore, partitions: set[int], capacity: int,
                 partition_of_key: Callable[[str], int]) -> None:
        self.store = store
        self.partition_of_key = partition_of_key
        self.changelogs = store.changelogs
        self.dirty = store.dirty
        self.unpersisted = store.unpersisted
        self.partitions = sorted(partitions)
        self.bound = frozenset(partitions)
        self.half = max(1, capacity // 2)
        self.hot: dict[str, Any] = {}
        self.cold: dict[str, Any] = {}
        self.dropping: list[dict[str, Any]] = []  # generations aged out, freed a part at a time
        self.reads = 0  # values read from the database
        self.exported = 0  # of them, counted in warden_table_reads_total
        self.load_key, self.load_value = store.loads()
        self.dump_key = codecs.get_codec(store.table.key_serializer).dumps
        self.db = store.table.data

    def _value(self, key: str) -> Any:
        """The key's value, None if absent."""
        value = self.hot.get(key, _MISSING)
        return self._fill(key) if value is _MISSING else value

    def _fill(self, key: str) -> Any:
        """A key not used since the last ageing: from `cold`, else read; now in `hot`."""
        value = self.cold.pop(key, _MISSING)
        if value is _MISSING:
            value = self._read(key)
        self.hot[key] = value
        return value

    def _read(self, key: str) -> Any:
        changed = (self.partition_of_key(key), key)
        value = self.dirty.get(changed, _MISSING)
        if value is _MISSING:
            value = self.unpersisted.get(changed, _MISSING)
        if value is _MISSING:
            if changed[0] not in self.bound:
                return None  # a partition not assigned here (its database may still be open)
            self.reads += 1
            raw = rocksdb_get(self.db, changed[0], self.dump_key(key))
            value = None if raw is None else self.load_value(raw)
        return value

    def peek(self, key: str) -> Any:
        """The key's value (None if absent), read without keeping it in the cache."""
        value = self.hot.get(key, _MISSING)
        if value is _MISSING:
            value = self.cold.get(key, _MISSING)
            if value is _MISSING:
                value = self._read(key)
        return value

    def age(self) -> None:
        if self.cold:
            self.dropping.append(self.cold)
        self.cold = self.hot
        self.hot = {}

    def release(self, count: int = 64) -> None:
        """Free up to `count` values of the generations aged out: freeing a generation of
        50,000 values at once would hold the event loop for ~10 ms."""
        dropping = self.dropping
        while dropping and count > 0:
            generation = dropping[-1]
            n = min(count, len(generation))
            for _ in range(n):
                generation.popitem()
            count -= n
            if not generation:
                dropping.pop()

    def clear_cached(self) -> None:
        self.hot = {}
        self.cold = {}
        self.dropping = []

    def __len__(self) -> int:
        return sum(1 for _ in self.scan(lambda raw: None, lambda value: None))

    # The core calls these for every event: the hit path is one dict read.

    def __getitem__(self, key: str) -> Any:
        value = self.hot.get(key, _MISSING)
        if value is _MISSING:
            value = self._fill(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self.hot.get(key, _MISSING)
        if value is _MISSING:
            value = self._fill(key)
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        value = self.hot.get(key, _MISSING)  # type: ignore[call-overload]
        if value is _MISSING:
            value = self._fill(key)  # type: ignore[arg-type]
        return value is not None

    def __setitem__(self, key: str, value: Any) -> None:
        self.hot[key] = value
        self.dirty[(self.changelogs.partition, key)] = value

    def __delitem__(self, key: str) -> None:
        if self._value(key) is None:
            raise KeyError(key)
        self.hot[key] = None
        self.dirty[(self.changelogs.partition, key)] = None

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.scan(lambda raw: None, lambda value: None))

    def items(self) -> Any:
        return self.scan(self.load_value, lambda value: value)

    def values(self) -> Any:
        return (value for _, value in self.items())

    def scan(self, from_raw: Callable[[bytes], Any], from_value: Callable[[Any], Any],
             partitions: set[int] | None = None) -> Iterator[tuple[str, Any]]:
        """Every key of the bound partitions (or of `partitions`) with what `from_raw` makes
        of its stored bytes, or `from_value` of its value where the cache holds a newer one
        (changed and not yet written to the database). Streams the databases: nothing is
        held but the keys changed meanwhile. Every read of the tables is done this way
        (the deadlines after a rebalance, a seller's views again for a Redis that lost them)."""
        wanted = self.bound if partitions is None else partitions
        newer = {key: value for (partition, key), value in self.unpersisted.items() if partition in wanted}
        newer.update({key: value for (partition, key), value in self.dirty.items() if partition in wanted})
        seen: set[str] = set()
        load_key = self.load_key
        for partition in self.partitions:
            if partitions is not None and partition not in partitions:
                continue
            for raw_key, raw in rocksdb_items(self.db, {partition}):
                key = load_key(raw_key)
                value = newer.get(key, _MISSING)
                if value is _MISSING:
                    yield key, from_raw(raw)
                else:
                    seen.add(key)
                    if value is not None:
                        yield key, from_value(value)
        for key, value in newer.items():
            if key not in seen and value is not None:
                yield key, from_value(value)


class Changelogs:
    """The changelog writes of all tables, produced before every offset commit."""

    def __init__(self) -> None:
        self.stores: list[ChangelogStore] = []
        self.partition = 0
        self._persist: dict[tuple[int, int], int] = {}  # (store index, partition) -> offset
        self.produced = 0
        # (a persistent store, partition, a write batch) of the checkpoint under way: written
        # to the store once the checkpoint is ended (persist)
        self._local_writes: list[tuple[Any, int, Any]] = []
        self.write_batch: Callable[[], Any] = _write_batch  # a persistent store's write batch
        self.fence = EpochFence()
        self.staging = CheckpointStaging()  # its marker topic is set by declare_tables
        self.checkpoint_seq = 0  # the sequence number of this worker's latest checkpoint
        self.unended: dict[int, list[tuple[str, bytes]]] = {}  # partition -> headers, not yet ended
        # partition -> the input offsets the unended checkpoint's changes cover
        self.unended_inputs: dict[int, dict[str, int]] = {}
        # () -> partition -> input topic -> the next offset to handle: where the inputs stand
        # when a checkpoint takes the tables' changes (set by the worker)
        self.input_positions: Callable[[], dict[int, dict[str, int]]] = dict
        # the databases of a restart opened while the group join waits: the first batch waits for it
        self.opening = False
        self._opened: asyncio.Event | None = None
        self.cache_entries = 100_000  # a persistent table's values held decoded (BoundedCache)

    def begin_opening(self) -> None:
        """From now until end_opening, the first batch waits (wait_opened)."""
        if not self.opening:
            self.opening = True
            self._opened = asyncio.Event()

    def end_opening(self) -> None:
        self.opening = False
        if self._opened is not None:
            self._opened.set()

    async def wait_opened(self) -> None:
        """Wait until an opening under way has ended (at once if none is)."""
        if self.opening and self._opened is not None:
            await self._opened.wait()

    def export_reads(self) -> None:
        """Add the values read from the databases since the last call to warden_table_reads_total."""
        for store in self.stores:
            cache = store.cache
            if cache is not None and cache.reads != cache.exported:
                TABLE_READS.labels(store.table.name).inc(cache.reads - cache.exported)
                cache.exported = cache.reads

    def trim(self) -> None:
        """Between records: bring every persistent table's cache back within its bound."""
        for store in self.stores:
            cache = store.cache
            if cache is not None:
                if len(cache.hot) >= cache.half:
                    cache.age()
                elif cache.dropping:
                    cache.release()

    def apply(self, app: Any, tp: TP, records: list[Any]) -> bool:
        """`apply_changelog` (streams.table_restore), through this worker's epoch fence."""
        return apply_changelog(app, tp, records, self.fence, self.staging)

    def at(self, partition: int) -> None:
        """The partition whose record is handled now: its writes go to that changelog
        partition (the tables are co-partitioned with the inputs), and a RocksDB store
        writes that partition's database."""
        if partition != self.partition or not current_event_set():
            self.partition = partition
            set_current_partition(partition)

    def pending(self) -> int:
        return sum(len(s.dirty) for s in self.stores)

    def discard_pending(self) -> int:
        """Forget the changes not yet produced and every value held in memory: this worker
        no longer owns its partitions, and what it holds may be ahead of their changelogs.
        The next assignment restores them from the changelogs (a memory store reads them
        whole again; a persistent one from the offset it has, then into a new cache)."""
        dropped = self.pending()
        self.fence.clear()
        self.staging.clear()
        self.unended.clear()
        self.unended_inputs = {}
        self._local_writes = []
        self._persist.clear()
        for store in self.stores:
            store.dirty.clear()  # the same dict stays shared with the store's DirtyDict
            store.unpersisted.clear()
            data = store.table.data
            if is_memory_store(data):
                clear_memory_store(data)
            if store.cache is not None:
                store.cache.clear_cached()
        return dropped

    def produce_pending(self, produce: Produce, generation: int = 0) -> list[tuple[Any, ...]]:
        """Hand every changed key's newest value to `produce`, except the last one of each
        changelog partition, which is returned: produce those once the rest is on the
        broker, through the producer with delivery reports, whose report of each then
        tells a persistent store how far its changelog partition is applied (a report for
        every record would cost a Python call each)."""
        taken: list[Taken] = []
        for _ in self._take_steps(taken, float("inf"), generation):
            pass
        held: list[tuple[Any, ...]] = []
        for _ in self._send_steps(taken, produce, held, float("inf")):
            pass
        return held

    async def take_pending_sliced(self, generation: int = 0, slice_s: float = 0.002) -> list[Taken]:
        """The checkpoint's cut: every changed key's newest value taken and encoded, giving
        the event loop a turn after every `slice_s` of work. The caller holds the tables'
        lock meanwhile, and no record is handled (agents.process_events): the values are the
        core's live objects, and a record would change them in place under a checkpoint
        whose input offsets do not cover it. Once encoded they are bytes: handing them to
        the producer and to a persistent store's write batches (`send_taken_sliced`) needs
        no lock, and records go on meanwhile. A slice is as long as a slice of record
        handling (agents.process_events' SLICE_S)."""
        taken: list[Taken] = []
        for _ in self._take_steps(taken, slice_s, generation):
            await asyncio.sleep(0)
        return taken

    async def send_taken_sliced(self, taken: list[Taken], produce: Produce,
                                slice_s: float = 0.002) -> list[tuple[Any, ...]]:
        """The records of `take_pending_sliced` handed to `produce` and to the write batches,
        a slice at a time; returns each changelog partition's last record (`produce_pending`)."""
        held: list[tuple[Any, ...]] = []
        for _ in self._send_steps(taken, produce, held, slice_s):
            await asyncio.sleep(0)
        return held

    def _take_steps(self, out: list[Taken], slice_s: float, generation: int) -> Iterator[None]:
        """Each record carries its writer's epoch (EpochFence), of the `generation` the
        changes were taken in."""
        taken = [(index, store, store.dirty.copy()) for index, store in enumerate(self.stores) if store.dirty]
        if not taken:
            return
        self.checkpoint_seq += 1
        seq = str(self.checkpoint_seq).encode()
        headers = self.unended = {}  # partition -> its records' headers (epoch, checkpoint)
        # the inputs as they stand now, in the same step as the changes are taken: a restore
        # that applies this checkpoint goes on reading the inputs from exactly there
        self.unended_inputs = self.input_positions()
        for _, store, dirty in taken:
            store.dirty.clear()  # the same dict stays shared with the store's DirtyDict
            if store.cache is not None:
                store.unpersisted.update(dirty)  # until written to the store (persist)
        clock = time.perf_counter
        turn_at = clock() + slice_s
        for index, store, dirty in taken:
            table = store.table
            dump_key = codecs.get_codec(table.key_serializer).dumps
            dump_value = codecs.get_codec(table.value_serializer).dumps
            last = {}  # changelog partition -> its last changed key
            everyone = table.partitions
            for changed in reversed(dirty):  # from the end: stops once every partition is found
                if changed[0] not in last:
                    last[changed[0]] = changed
                    if len(last) == everyone:
                        break
            records: list[tuple[int, bytes, bytes | None]] = []
            for changed, value in dirty.items():
                partition, key = changed
                if partition not in headers:
                    epoch = self.fence.epoch(partition, generation)
                    headers[partition] = [(EPOCH_HEADER, str(epoch).encode()), (CHECKPOINT_HEADER, seq)]
                records.append((partition, dump_key(key), None if value is None else dump_value(value)))
                if clock() >= turn_at:
                    yield
                    turn_at = clock() + slice_s
            out.append(Taken(index, store, records, {p: dump_key(k) for p, (_, k) in last.items()}, headers))
            self.produced += len(dirty)

    def _send_steps(self, taken: list[Taken], produce: Produce, held: list[tuple[Any, ...]],
                    slice_s: float) -> Iterator[None]:
        clock = time.perf_counter
        turn_at = clock() + slice_s
        for t in taken:
            table = t.store.table
            topic = table.changelog_topic.get_topic_name()
            persists = not is_memory_store(table.data)
            last, headers = t.last, t.headers
            writes: dict[int, Any] = {}  # a persistent store's write batch per partition
            for partition, raw_key, raw in t.records:
                header = headers[partition]
                if persists:
                    batch = writes.get(partition)
                    if batch is None:
                        batch = writes[partition] = self.write_batch()
                    if raw is None:
                        batch.delete(raw_key)
                    else:
                        batch.put(raw_key, raw)
                if last[partition] == raw_key:
                    # the partition's last record, produced once the rest is on the broker:
                    # its delivery tells a persistent store how far the changelog is applied
                    delivered = self._delivered(t.position, partition) if persists else None
                    held.append((topic, raw, raw_key, partition, delivered, header))
                else:
                    produce(topic, raw, raw_key, partition=partition, headers=header)
                if clock() >= turn_at:
                    # a store's write of a busy commit's changes in one batch blocks for
                    # tens of ms: each slice makes its own
                    self._local_writes.extend((table.data, partition, batch) for partition, batch in writes.items())
                    writes.clear()
                    yield
                    turn_at = clock() + slice_s
            self._local_writes.extend((table.data, partition, batch) for partition, batch in writes.items())

    def end_checkpoint(self, produce: Produce) -> int:
        """Once every record of the checkpoint is on the broker: a marker per partition written,
        on the clocks changelog (streams.checkpoints), with the input offsets its changes
        cover (`take_inputs`). Returns how many."""
        topic = self.staging.marker_topic
        ended, self.unended = self.unended, {}
        inputs, self.unended_inputs = self.unended_inputs, {}
        for partition, header in ended.items():
            epoch = int(header[0][1])
            covered = inputs.get(partition)
            produce(topic, marker_value(int(header[1][1]), covered), marker_key(epoch).encode(),
                    partition=partition, headers=header)
            if covered:
                self.staging.inputs[partition] = covered  # the newest checkpoint on it is this one
        return len(ended)

    def produce_last(self, produce: Produce, held: list[tuple[Any, ...]]) -> None:
        for topic, value, key, partition, on_delivery, headers in held:
            produce(topic, value, key, partition=partition, headers=headers, on_delivery=on_delivery)

    def _delivered(self, index: int, partition: int) -> Callable[[Any, Any], None]:
        def delivered(err: Any, msg: Any) -> None:
            if err is None:
                key = (index, partition)
                if msg.offset() > self._persist.get(key, -1):
                    self._persist[key] = msg.offset()
        return delivered

    def persist_offsets(self) -> None:
        """`persist`, at once."""
        for _ in self._persist_steps(float("inf")):
            pass

    async def persist(self, slice_s: float = 0.002) -> None:
        """Once the checkpoint is ended (its marker on the broker): write its changes to a
        persistent store (RocksDB), then tell it how far its changelog partitions are
        applied, so a restart's recovery starts from there; the loop gets a turn between
        write batches. Written before, a kill in the middle of the checkpoint left the
        local store holding part of a checkpoint its changelogs never completed (an order's
        new facts without the seller's figures that count them), which no restore undoes."""
        for _ in self._persist_steps(slice_s):
            await asyncio.sleep(0)

    def _persist_steps(self, slice_s: float) -> Iterator[None]:
        writes, self._local_writes = self._local_writes, []
        turn_at = time.perf_counter() + slice_s
        for data, partition, batch in writes:
            rocksdb_write(data, partition, batch)
            if time.perf_counter() >= turn_at:
                yield
                turn_at = time.perf_counter() + slice_s
        for store in self.stores:
            # written: a read of an evicted key finds them in the store. Emptied a part at a
            # time (a busy checkpoint's 100,000 values freed at once hold the loop ~20 ms);
            # what is left meanwhile equals what the store holds, and a newer value is in
            # `dirty`, read first
            unpersisted = store.unpersisted
            while unpersisted:
                for _ in range(min(4096, len(unpersisted))):
                    unpersisted.popitem()
                if time.perf_counter() >= turn_at:
                    yield
                    turn_at = time.perf_counter() + slice_s
        persist, self._persist = self._persist, {}
        for (index, partition), offset in persist.items():
            table = self.stores[index].table
            table.data.set_persisted_offset(TP(table.changelog_topic.get_topic_name(), partition), offset)


def _write_batch() -> Any:
    import rocksdict

    return rocksdict.WriteBatch(raw_mode=True)
