"""Write-back table stores: what reaches the changelog, and when (unit: fake tables, no broker)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from faust.types import TP

from streams.checkpoints import CHECKPOINT_HEADER, CheckpointStaging
from streams.epochs import EPOCH_HEADER, EpochFence
from streams.faust_internals import Acks
from streams.table_codecs import register_codecs
from streams.table_stores import Changelogs, ChangelogStore


class FakeBatch:
    def __init__(self) -> None:
        self.ops: list[tuple[bytes, bytes | None]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.ops.append((key, value))

    def delete(self, key: bytes) -> None:
        self.ops.append((key, None))


class FakeDB(dict):  # type: ignore[type-arg]
    def write(self, batch: FakeBatch) -> None:
        for key, value in batch.ops:
            if value is None:
                self.pop(key, None)
            else:
                self[key] = value


class FakeStore(dict):  # a persistent store: per-partition databases, told the changelog offsets they hold
    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[TP, int] = {}
        self._dbs: dict[int, FakeDB] = {}

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset

    def _db_for_partition(self, partition: int) -> FakeDB:
        return self._dbs.setdefault(partition, FakeDB())

    def _visible_items(self, db: FakeDB) -> Any:
        return db.items()


class FakeTopic:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


class FakeTable:
    def __init__(self, name: str) -> None:
        self.data = FakeStore()
        self.changelog_topic = FakeTopic(f"{name}-changelog")
        self.key_serializer = "utf8"
        self.value_serializer = "json"
        self.partitions = 2  # as a Faust table declares them


class Sent:
    def __init__(self) -> None:
        self.records: list[tuple[str, Any, bytes, int]] = []
        self.callbacks: list[Any] = []
        self.headers: list[Any] = []

    def __call__(self, topic: str, value: bytes | None, key: bytes, partition: int, on_delivery: Any = None,
                 headers: Any = None) -> None:
        self.records.append((topic, None if value is None else json.loads(value), key, partition))
        self.callbacks.append(on_delivery)
        self.headers.append(headers)


def stores() -> tuple[Changelogs, ChangelogStore, ChangelogStore]:
    register_codecs()
    logs = Changelogs()
    logs.write_batch = FakeBatch  # type: ignore[assignment]
    a, b = ChangelogStore(FakeTable("a"), logs), ChangelogStore(FakeTable("b"), logs)
    logs.stores += [a, b]
    return logs, a, b


def test_writes_go_through_and_only_the_newest_value_of_a_key_is_produced() -> None:
    logs, a, b = stores()
    logs.at(1)
    a["k"] = [1]
    a["k"] = [2]
    a["other"] = [3]
    logs.at(2)
    b["k"] = [9]
    assert a["k"] == [2] and a.table.data["k"] == [2] and b.get("k") == [9]
    sent = Sent()
    held = logs.produce_pending(sent)
    logs.produce_last(sent, held)
    assert sorted(r for r in sent.records) == sorted([
        ("a-changelog", [2], b"k", 1), ("a-changelog", [3], b"other", 1), ("b-changelog", [9], b"k", 2)])
    assert logs.pending() == 0
    sent2 = Sent()
    assert logs.produce_pending(sent2) == [] and sent2.records == []  # nothing changed since


def test_the_last_record_of_each_changelog_partition_is_held_back_for_its_own_batch() -> None:
    logs, a, _ = stores()
    logs.at(0)
    for i in range(5):
        a[f"k{i}"] = [i]
    logs.at(3)
    a["x"] = [7]
    sent = Sent()
    held = logs.produce_pending(sent)
    assert [r[2] for r in sent.records] == [b"k0", b"k1", b"k2", b"k3"]
    assert sorted((h[2], h[3]) for h in held) == [(b"k4", 0), (b"x", 3)]


def test_a_deletion_is_a_tombstone() -> None:
    logs, a, _ = stores()
    logs.at(0)
    a["k"] = [1]
    del a["k"]
    assert "k" not in a
    sent = Sent()
    logs.produce_last(sent, logs.produce_pending(sent))
    assert sent.records == [("a-changelog", None, b"k", 0)]


def test_a_persistent_store_learns_the_offset_of_each_partitions_last_record() -> None:
    logs, a, _ = stores()
    logs.at(2)
    a["k1"], a["k2"] = [1], [2]
    sent = Sent()
    logs.produce_last(sent, logs.produce_pending(sent))
    # only the last record of a partition reports its delivery: the records before it are
    # on the broker before it is produced
    assert sent.callbacks[0] is None and sent.callbacks[1] is not None
    sent.callbacks[0] = lambda err, msg: None

    class Msg:
        def __init__(self, offset: int) -> None:
            self._offset = offset

        def offset(self) -> int:
            return self._offset

    for offset, callback in zip((40, 41), sent.callbacks, strict=False):
        callback(None, Msg(offset))
    logs.persist_offsets()
    assert a.table.data.persisted == {TP("a-changelog", 2): 41}


class FakeConsumer:
    def __init__(self, committed: int | None) -> None:
        from collections import defaultdict

        self._committed_offset: Any = defaultdict(lambda: committed)
        self._acked_index: Any = defaultdict(set)
        self._acked: Any = defaultdict(list)
        self._n_acked = 0


def test_acks_mark_offsets_once_and_ignore_what_is_already_committed() -> None:
    consumer = FakeConsumer(committed=10)
    acks = Acks(consumer)
    tp = TP("t", 0)
    for offset in (9, 10, 11, 11):
        acks.ack(tp, offset)
    assert consumer._acked[tp] == [10, 11]
    assert consumer._n_acked == 2


def test_a_memory_store_dict_notes_the_cores_writes_but_not_recoverys() -> None:
    from faust.stores.memory import Store as MemoryStore

    from streams.table_setup import bind_fast
    from streams.table_stores import DirtyDict
    from tables.engine import Stores

    register_codecs()
    logs = Changelogs()
    table = FakeTable("m")
    table.data = MemoryStore.__new__(MemoryStore)  # a memory store without an app
    table.data.data = {"recovered": [0]}
    store = ChangelogStore(table, logs)
    logs.stores.append(store)
    stores = Stores(orders=store)  # type: ignore[arg-type]
    bind_fast(stores, logs)
    fast = stores.orders
    assert isinstance(fast, DirtyDict) and fast is table.data.data and fast["recovered"] == [0]
    fast.update({"from-changelog": [1]})  # recovery's way: not noted
    logs.at(2)
    fast["k"] = [5]
    del fast["recovered"]
    sent = Sent()
    logs.produce_last(sent, logs.produce_pending(sent))
    assert sorted(sent.records, key=repr) == sorted([("m-changelog", [5], b"k", 2),
                                                     ("m-changelog", None, b"recovered", 2)], key=repr)
    fast["k2"] = [6]  # the dirty set is still shared after a flush
    assert logs.pending() == 1


PARTITION_OF = {"k": 1, "j": 2, "i": 2, "x": 3}.__getitem__


def test_a_persistent_store_gets_each_checkpoint_and_is_read_through_a_cache_after_recovery() -> None:
    from streams.table_setup import bind_fast
    from streams.table_stores import BoundedCache
    from tables.engine import Stores

    logs, a, _ = stores()
    stores_ = Stores(orders=a)  # type: ignore[arg-type]
    bind_fast(stores_, logs, {1, 2}, PARTITION_OF)
    fast = stores_.orders
    assert isinstance(fast, BoundedCache) and dict(fast) == {}
    logs.at(1)
    fast["k"] = [1]
    logs.at(2)
    fast["j"] = [2]
    del fast["j"]
    fast["i"] = [3]
    sent = Sent()
    logs.produce_last(sent, logs.produce_pending(sent))
    logs.persist_offsets()  # the checkpoint ended
    dbs = a.table.data._dbs
    assert dbs[1] == {b"k": b"[1]"} and dbs[2] == {b"i": b"[3]"}
    dbs[3] = FakeDB({b"x": b"[9]"})  # a partition not assigned here
    bind_fast(stores_, logs, {1, 2}, PARTITION_OF)  # a rebalance: a new cache over the databases
    assert stores_.orders is not fast and stores_.orders.hot == {}  # type: ignore[attr-defined]
    assert dict(stores_.orders) == {"k": [1], "i": [3]}
    assert stores_.orders.get("i") == [3] and "j" not in stores_.orders and "x" not in stores_.orders


def test_the_cache_stays_within_its_bound_and_reads_the_rest_from_the_databases() -> None:
    from streams.table_stores import BoundedCache

    logs, a, _ = stores()
    logs.cache_entries = 1_000
    dbs = a.table.data._dbs
    dbs[0] = FakeDB({f"k{i}".encode(): f"[{i}]".encode() for i in range(5_000)})
    cache = a.fast({0}, lambda key: 0)
    assert isinstance(cache, BoundedCache)
    logs.at(0)
    for i in range(5_000):
        assert cache[f"k{i}"] == [i]
        logs.trim()  # between records
        assert len(cache.hot) + len(cache.cold) <= 1_000
        # a generation aged out is freed a part at a time, by the next records' trims
        assert not cache.dropping or len(cache.hot) <= 8
        assert len(cache.hot) + len(cache.cold) + sum(map(len, cache.dropping)) <= 1_500
    assert cache.reads == 5_000
    assert cache["k4999"] == [4999] and cache.reads == 5_000  # held: not read again
    assert cache.get("nope") is None and "nope" not in cache and cache.reads == 5_001  # absent, held as such


def test_a_changed_value_dropped_from_the_cache_is_read_from_its_checkpoint_until_written() -> None:
    logs, a, _ = stores()
    logs.cache_entries = 1_000
    dbs = a.table.data._dbs
    dbs[0] = FakeDB({b"old": b"[1]", b"gone": b"[2]"})
    cache = a.fast({0}, lambda key: 0)
    logs.at(0)
    cache["old"] = [10]
    del cache["gone"]
    cache["new"] = [11]
    sent = Sent()
    held = logs.produce_pending(sent)  # taken by a checkpoint, not yet written to the database
    for i in range(2_000):  # the changed keys age out of the cache
        cache.get(f"other{i}")
        logs.trim()
    assert "old" not in cache.hot and "old" not in cache.cold
    assert cache["old"] == [10] and "gone" not in cache and cache["new"] == [11]
    assert dbs[0] == {b"old": b"[1]", b"gone": b"[2]"}
    assert dict(cache.items()) == {"old": [10], "new": [11]}
    logs.produce_last(sent, held)
    logs.persist_offsets()  # written: read from the database from now on
    assert a.unpersisted == {} and dbs[0] == {b"old": b"[10]", b"new": b"[11]"}
    cache.clear_cached()
    assert cache["old"] == [10] and "gone" not in cache and cache["new"] == [11]


def test_a_scan_reads_the_due_of_raw_values_and_changed_ones_from_the_cache() -> None:
    logs, a, _ = stores()
    dbs = a.table.data._dbs
    dbs[0] = FakeDB({b"a": b"[1,5]", b"b": b"[2,null]", b"c": b"[3,7]"})
    dbs[1] = FakeDB({b"d": b"[4,9]"})
    cache = a.fast({0, 1}, lambda key: 1 if key == "d" else 0)
    logs.at(0)
    cache["a"] = [1, 6]
    del cache["c"]
    cache["e"] = [5, 8]

    def due(raw: bytes) -> Any:
        return json.loads(raw)[1]

    assert sorted(cache.scan(due, lambda v: v[1])) == [("a", 6), ("b", None), ("d", 9), ("e", 8)]
    assert sorted(cache.scan(due, lambda v: v[1], {1})) == [("d", 9)]
    assert len(cache) == 4


def test_sliced_production_gives_the_loop_turns_and_leaves_later_changes_to_the_next_flush() -> None:
    import asyncio

    logs, a, _ = stores()
    logs.at(0)
    for i in range(10):
        a[f"k{i}"] = [i]
    sent = Sent()
    turns: list[int] = []

    async def meanwhile() -> None:  # records handled while the flush yields
        while True:
            await asyncio.sleep(0)
            turns.append(len(sent.records))
            if len(turns) == 1:
                a["k0"] = ["changed after it was produced"]
                a["new"] = [1]

    async def flush() -> list[Any]:
        other = asyncio.ensure_future(meanwhile())
        taken = await logs.take_pending_sliced(slice_s=0.0)
        held = await logs.send_taken_sliced(taken, sent, slice_s=0.0)
        other.cancel()
        return held

    held = asyncio.run(flush())
    logs.produce_last(sent, held)
    assert sorted(r[2] for r in sent.records) == sorted(f"k{i}".encode() for i in range(10))
    assert turns and turns[0] < 10  # the loop ran before the flush was through
    assert ("a-changelog", [0], b"k0", 0) in sent.records  # the value it took, not the later one
    again = Sent()
    logs.produce_last(again, logs.produce_pending(again))
    assert sorted(r[2] for r in again.records) == [b"k0", b"new"]
    assert ("a-changelog", ["changed after it was produced"], b"k0", 0) in again.records


class Rec:
    def __init__(self, offset: int, epoch: int | None) -> None:
        self.offset = offset
        self.headers = [] if epoch is None else [(EPOCH_HEADER, str(epoch).encode())]


def test_every_changelog_record_carries_its_writers_epoch() -> None:
    logs, a, b = stores()
    logs.at(1)
    a["k"] = [1]
    a["j"] = [2]
    logs.at(2)
    b["k"] = [3]
    sent = Sent()
    logs.produce_last(sent, logs.produce_pending(sent, generation=7))
    assert sent.headers == [[(EPOCH_HEADER, b"7"), (CHECKPOINT_HEADER, b"1")]] * 3
    # a partition whose changelog already holds a higher epoch (the group's generations
    # started again) is written above it
    logs.fence.admit(TP("a-changelog", 2), [Rec(0, 12)])
    b["k"] = [4]
    logs.at(1)
    a["k"] = [5]
    sent = Sent()
    logs.produce_last(sent, logs.produce_pending(sent, generation=8))
    epochs = {(r[0], r[3]): h[0][1] for r, h in zip(sent.records, sent.headers, strict=True)}
    assert epochs == {("b-changelog", 2): b"13", ("a-changelog", 1): b"8"}
    assert {h[1] for h in sent.headers} == {(CHECKPOINT_HEADER, b"2")}


def test_the_fence_skips_an_earlier_owners_writes_after_a_later_owners() -> None:
    fence = EpochFence()
    tp = TP("sellers-changelog", 3)
    # owner of generation 1, then a new owner (3), then the paused first owner's late writes
    records = [Rec(0, 1), Rec(1, 1), Rec(2, 3), Rec(3, 1), Rec(4, 3), Rec(5, None)]
    assert [r.offset for r in fence.admit(tp, records[:3])] == [0, 1, 2]
    assert [r.offset for r in fence.admit(tp, records[3:])] == [4, 5]
    assert fence.skipped == 1
    # late writes that came before the new owner's first write are its own starting state: kept
    assert [r.offset for r in EpochFence().admit(tp, [Rec(0, 1), Rec(1, 1), Rec(2, 3)])] == [0, 1, 2]
    # read again from the start (a restore from scratch): judged afresh, not against epoch 3
    assert [r.offset for r in fence.admit(tp, records)] == [0, 1, 2, 4, 5]
    # other partitions are judged on their own
    assert [r.offset for r in fence.admit(TP("sellers-changelog", 0), [Rec(0, 1)])] == [0]


class Rec2:
    """A changelog record as aiokafka hands it: offset, key, value, headers."""

    def __init__(self, offset: int, key: bytes, value: bytes | None, epoch: int | None = None,
                 seq: int | None = None) -> None:
        self.offset, self.key, self.value = offset, key, value
        self.headers = [] if epoch is None else [(EPOCH_HEADER, str(epoch).encode()),
                                                 (CHECKPOINT_HEADER, str(seq).encode())]


def test_a_checkpoint_ends_with_a_marker_per_partition_after_its_records() -> None:
    logs, a, b = stores()
    logs.staging.marker_topic = "clocks-changelog"
    inputs = {1: {"orders": 7, "scans": 3}, 2: {"orders": 4}}
    logs.input_positions = lambda: {p: dict(o) for p, o in inputs.items()}
    logs.at(1)
    a["k"] = [1]
    logs.at(2)
    b["k"] = [2]
    sent = Sent()
    held = logs.produce_pending(sent, generation=5)
    inputs[1]["orders"] = 9  # a record handled after the changes were taken: not covered
    logs.produce_last(sent, held)
    assert logs.end_checkpoint(sent) == 2
    markers = [(r[0], r[2], r[3], r[1]) for r in sent.records[-2:]]
    assert sorted(markers) == [
        ("clocks-changelog", b"\x00checkpoint:5", 1, {"inputs": {"orders": 7, "scans": 3}, "seq": 1}),
        ("clocks-changelog", b"\x00checkpoint:5", 2, {"inputs": {"orders": 4}, "seq": 1})]
    # the newest checkpoint this worker knows of on each partition is the one it wrote
    assert logs.staging.input_offset("orders", 1) == 7 and logs.staging.input_offset("scans", 2) is None
    assert logs.end_checkpoint(sent) == 0  # ended once


def test_a_restore_applies_a_checkpoint_only_once_its_marker_is_read() -> None:
    staging = CheckpointStaging("clocks-changelog")
    orders, sellers, clocks = TP("orders-changelog", 0), TP("sellers-changelog", 0), TP("clocks-changelog", 0)
    # checkpoint 1 of epoch 3: an order and its seller, then the marker
    assert staging.arrive(orders, [Rec2(0, b"o1", b"{}", 3, 1)]) == []  # waits for its marker
    assert staging.arrive(sellers, [Rec2(0, b"s", b"{}", 3, 1)]) == []
    released = staging.arrive(clocks, [Rec2(0, b"c0", b"[1, 1]", 3, 1), Rec2(1, b"\x00checkpoint:3", b"1", 3, 1)])
    assert sorted((tp.topic, [r.offset for r in rs]) for tp, rs in released) == [
        ("clocks-changelog", [0]), ("orders-changelog", [0]), ("sellers-changelog", [0])]
    # a record of a complete checkpoint read after its marker applies at once
    assert [(tp.topic, len(rs)) for tp, rs in staging.arrive(orders, [Rec2(1, b"o0", b"{}", 3, 1)])] == [
        ("orders-changelog", 1)]
    # checkpoint 2: the writer was killed after the order's record, before the seller's and the marker
    assert staging.arrive(orders, [Rec2(2, b"o2", b"{}", 3, 2)]) == []
    assert staging.finish({0}) == 1 and staging.dropped == 1  # the restore ends: never applied
    # records written before checkpoints were named apply as they come
    assert len(staging.arrive(orders, [Rec2(3, b"o3", b"{}")])) == 1


def test_a_later_owners_marker_drops_an_earlier_owners_unended_checkpoint() -> None:
    staging = CheckpointStaging("clocks-changelog")
    orders, clocks = TP("orders-changelog", 1), TP("clocks-changelog", 1)
    assert staging.arrive(orders, [Rec2(0, b"o1", b"{}", 2, 7)]) == []  # epoch 2's checkpoint 7, unended
    assert staging.arrive(orders, [Rec2(1, b"o1", b"{}", 4, 1)]) == []
    released = staging.arrive(clocks, [Rec2(0, b"\x00checkpoint:4", b"1", 4, 1)])
    assert [(tp.topic, [r.offset for r in rs]) for tp, rs in released] == [("orders-changelog", [1])]
    assert staging.dropped == 1 and staging.waiting == {1: []}


class Restored:
    def __init__(self, key: bytes, value: bytes | None) -> None:
        self.key, self.value = key, value


def test_a_restart_opens_its_databases_only_once_the_join_is_sent_and_the_first_batch_waits_meanwhile(
        tmp_path: Any) -> None:
    import asyncio

    from streams.table_setup import open_local_stores

    logs, a, b = stores()
    for store in (a, b):
        data = store.table.data
        data.partition_path = lambda p, name=store.table.changelog_topic.name: tmp_path / name / str(p)  # type: ignore[attr-defined]
        for p in (0, 2):
            (tmp_path / store.table.changelog_topic.name / str(p)).mkdir(parents=True)
    seen: list[str] = []
    asks = iter([False, False, True])

    def joining() -> bool:
        sent = next(asks, True)
        seen.append(f"asked: open {sorted(a.table.data._dbs)}, waiting {logs.opening}, sent {sent}")
        return sent

    def meanwhile() -> None:
        seen.append(f"meanwhile: open {sorted(a.table.data._dbs)}")

    opened = asyncio.run(open_local_stores(logs, 4, joining, meanwhile))
    assert seen == ["asked: open [], waiting True, sent False"] * 2 + [
        "asked: open [], waiting True, sent True", "meanwhile: open []"]
    assert opened == 4 and sorted(a.table.data._dbs) == sorted(b.table.data._dbs) == [0, 2]
    assert not logs.opening  # opened: the first batch goes on


def test_a_database_that_fails_to_open_leaves_no_first_batch_waiting(tmp_path: Any) -> None:
    import asyncio

    from streams.table_setup import open_local_stores

    logs, a, _ = stores()
    data = a.table.data
    data.partition_path = lambda p: tmp_path / str(p)  # type: ignore[attr-defined]
    (tmp_path / "0").mkdir()
    (tmp_path / "2").mkdir()
    works = data._db_for_partition

    def broken(partition: int) -> Any:
        if partition == 2:  # after the first one opened
            raise OSError("IO error: lock held")
        return works(partition)

    data._db_for_partition = broken  # type: ignore[attr-defined]

    async def scenario() -> None:
        with pytest.raises(OSError, match="lock held"):
            await open_local_stores(logs, 4)
        assert not logs.opening
        await asyncio.wait_for(logs.wait_opened(), 1.0)  # returns at once

    asyncio.run(scenario())


def test_a_restore_goes_on_reading_the_inputs_where_its_newest_checkpoint_stood() -> None:
    """A checkpoint's marker carries the input offsets its changes cover; the restore's seek
    takes those of the newest one applied (a commit may lag it, or be missing)."""
    staging = CheckpointStaging("clocks-changelog")
    clocks = TP("clocks-changelog", 2)
    staging.arrive(clocks, [Rec2(0, b"\x00checkpoint:3", b"1", 3, 1)])  # an older writer's marker: no offsets
    assert staging.input_offset("orders", 2) is None
    staging.arrive(clocks, [
        Rec2(1, b"\x00checkpoint:3", b'{"inputs": {"orders": 40, "scans": 12}, "seq": 2}', 3, 2),
        Rec2(2, b"\x00checkpoint:4", b'{"inputs": {"orders": 55, "scans": 12}, "seq": 1}', 4, 1),
    ])
    assert (staging.input_offset("orders", 2), staging.input_offset("scans", 2)) == (55, 12)
    assert staging.input_offset("orders", 1) is None  # another partition: none known


def test_a_persistent_store_is_written_only_once_its_checkpoint_is_ended() -> None:
    """A kill in the middle of a checkpoint leaves its changelogs incomplete, and a restore
    drops it; the local store must not hold part of it either."""
    logs, a, b = stores()
    logs.at(1)
    a["order"] = [1]
    b["seller"] = [2]
    sent = Sent()
    logs.produce_last(sent, logs.produce_pending(sent))
    assert a.table.data._dbs == {} and b.table.data._dbs == {}  # not yet: the checkpoint is not ended
    logs.persist_offsets()
    assert a.table.data._dbs[1] == {b"order": b"[1]"} and b.table.data._dbs[1] == {b"seller": b"[2]"}
    # a worker fenced mid-checkpoint drops what it has not written
    logs.at(1)
    a["order"] = [3]
    logs.produce_last(sent, logs.produce_pending(sent))
    logs.discard_pending()
    logs.persist_offsets()
    assert a.table.data._dbs[1] == {b"order": b"[1]"}


def test_a_peek_reads_without_keeping_the_value() -> None:
    _, a, _ = stores()
    a.table.data._dbs[0] = FakeDB({b"old": b"[1]"})
    cache = a.fast({0}, lambda key: 0)
    assert cache.peek("old") == [1] and cache.peek("none") is None
    assert cache.hot == {} and cache.cold == {} and cache.reads == 2
    assert cache["old"] == [1] and cache.peek("old") == [1] and cache.reads == 3  # now held
