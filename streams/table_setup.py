"""Warden's tables declared on the Faust app, and the core pointed at their fastest views."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from streams.faust_internals import is_memory_store, new_changelog_topic, open_local_partitions, rocksdb_options
from streams.table_codecs import register_codecs
from streams.table_stores import Changelogs, ChangelogStore
from tables.engine import Stores
from tables.keys import clock_partition, seller_of


def bind_fast(stores: Stores, changelogs: Changelogs, active: set[int] | None = None,
              partition_of: Callable[[str], int] | None = None) -> None:
    """Point the core at its tables' fastest views (ChangelogStore.fast), once the tables'
    stores have recovered; after every rebalance (a persistent store's cache starts empty,
    over the partitions now `active` here). `partition_of`: a seller's partition (every
    key but a clock's starts with its seller's id)."""
    def by_seller(key: str) -> int:
        assert partition_of is not None
        return partition_of(seller_of(key))

    for name, store in zip(("orders", "sellers", "defect_buyers", "evidence", "clocks", "enforcement"),
                           changelogs.stores, strict=False):
        current = getattr(stores, name)
        if isinstance(current, ChangelogStore) or store.cache is not None:
            of_key = None if partition_of is None else clock_partition if name == "clocks" else by_seller
            setattr(stores, name, store.fast(active, of_key))


async def open_local_stores(changelogs: Changelogs, partitions: int,
                            joining: Callable[[], bool] = lambda: True,
                            meanwhile: Callable[[], Any] = lambda: None) -> int:
    """At start, while the group join waits on the broker: run `meanwhile` (other work the
    first records would wait for) and open the persistent stores' databases this worker's
    data directory holds (streams.faust_internals), so the assignment finds them open.
    Nothing of their values is read: the tables are read on demand (BoundedCache). All of
    it waits until `joining()` (the join sent: the app's own start-up is over, and the
    broker holds the join for seconds): opening a database after a kill replays its
    write-ahead log with the interpreter held (seconds for a busy worker's databases), and
    done first it put the join that long behind. The first batch waits for the opening
    (Changelogs.wait_opened). Returns how many databases were opened."""
    persistent = bool(changelogs.stores) and not any(is_memory_store(s.table.data)
                                                     for s in changelogs.stores)
    if persistent:
        changelogs.begin_opening()
    opened = 0
    try:
        waited = 0.0
        while not joining() and waited < 30.0:
            await asyncio.sleep(0.02)
            waited += 0.02
        meanwhile()
        if persistent:
            for store in changelogs.stores:
                for _ in open_local_partitions(store.table.data, partitions):
                    opened += 1
                    await asyncio.sleep(0)  # a database at a time: the consumer's thread runs between
    finally:
        changelogs.end_opening()  # the first batch never waits for an opening that will not come
    return opened


def declare_tables(app: Any, partitions: int, cache_entries: int = 100_000) -> tuple[Stores, Changelogs]:
    """Declare Warden's tables on `app`, co-partitioned with the input topics; a persistent
    table holds at most `cache_entries` values decoded (BoundedCache)."""
    register_codecs()
    changelogs = Changelogs()
    changelogs.cache_entries = cache_entries

    def table(name: str, codec: str) -> ChangelogStore:
        t = app.Table(name, partitions=partitions, key_type=str, options=rocksdb_options(app.conf.store))
        # Faust derives changelog serializers from types; ours are codecs. The store is
        # made lazily and reads them then; the changelog topic was made when the table
        # registered (with JSON), so make it again: recovery decodes with its schema.
        t.key_serializer = "utf8"
        t.value_serializer = codec
        t.changelog_topic = new_changelog_topic(t)
        store = ChangelogStore(t, changelogs)
        changelogs.stores.append(store)
        return store

    # declared in the order bind_fast names them
    orders = table("orders", "warden-order")
    sellers = table("sellers", "warden-seller")
    defect_buyers = table("defect-buyers", "json")
    evidence = table("evidence", "json")
    clocks = table("clocks", "json")  # also where each checkpoint's markers go (streams.checkpoints)
    enforcement = table("enforcement", "warden-history")
    changelogs.staging.marker_topic = clocks.table.changelog_topic.get_topic_name()
    return Stores(orders=orders, sellers=sellers, defect_buyers=defect_buyers, evidence=evidence,
                  clocks=clocks, enforcement=enforcement), changelogs
