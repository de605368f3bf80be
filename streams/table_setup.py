"""Warden's tables declared on the Faust app, and the core pointed at their fastest views."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from faust.stores.memory import Store as MemoryStore

from streams.faust_internals import new_changelog_topic, open_local_partitions
from streams.table_stores import Changelogs, ChangelogStore
from tables.codecs import register_codecs
from tables.engine import Stores


def bind_fast(stores: Stores, changelogs: Changelogs, active: set[int] | None = None) -> None:
    """Point the core at its tables' fastest views (ChangelogStore.fast), once the tables'
    stores have recovered; after every rebalance (a persistent store's values are read
    again for the partitions now `active` here)."""
    for name, store in zip(("orders", "sellers", "defect_buyers", "evidence", "clocks", "enforcement"),
                           changelogs.stores, strict=False):
        current = getattr(stores, name)
        if isinstance(current, ChangelogStore) or store.cache is not None:
            setattr(stores, name, store.fast(active))


async def open_local_stores(changelogs: Changelogs, partitions: int,
                            joining: Callable[[], bool] = lambda: True,
                            meanwhile: Callable[[], Any] = lambda: None) -> tuple[int, int]:
    """At start, while the group join waits on the broker: run `meanwhile` (other work the
    first records would wait for), open the persistent stores' databases this worker's
    data directory holds (streams.faust_internals), so the assignment finds them open, and
    read their values ahead (Changelogs.read_ahead). All of it waits until `joining()`
    (the join sent: the app's own start-up is over, and the broker holds the join for
    seconds): opening a database after a kill replays its write-ahead log with the
    interpreter held (24 databases at 1M events: 3.1 s), and done first it put the join
    that long behind. The first batch waits for the opening and the reading
    (Changelogs.ahead_read). Returns how many databases were opened and how many values
    read."""
    persistent = bool(changelogs.stores) and not any(isinstance(s.table.data, MemoryStore)
                                                     for s in changelogs.stores)
    if persistent:
        changelogs.begin_read_ahead()
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
    except BaseException:
        changelogs.end_read_ahead()  # the first batch never waits for a reading that will not come
        raise
    if not opened:
        changelogs.end_read_ahead()
        return 0, 0
    return opened, await changelogs.read_ahead()


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
