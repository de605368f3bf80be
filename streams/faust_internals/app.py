"""Faust's app, transport, producer and table manager as Warden runs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import faust
from faust.tables.manager import TableManager
from faust.transport.drivers.aiokafka import Producer as KafkaProducer
from faust.transport.drivers.aiokafka import Transport as KafkaTransport
from faust.types import TP

from streams.faust_internals.consumer import BatchConsumer, BatchHandler

# ((topic, partition)s, timeout in s) -> their log ends
LogEndsAsk = Callable[[list[tuple[str, int]], float], Awaitable[Mapping[tuple[str, int], int]]]


class CheckpointProducer(KafkaProducer):
    """Faust's producer, whose flush (awaited before every offset commit, on revocation and
    before recovery) also runs the app's `checkpoint`, if it has one: what must be on the
    broker before offsets are committed (agents.runtime.Checkpoint)."""

    async def flush(self) -> None:
        await super().flush()
        checkpoint = getattr(self.app, "checkpoint", None)
        if checkpoint is not None:
            await checkpoint()


class BatchTransport(KafkaTransport):
    Consumer = BatchConsumer
    Producer = CheckpointProducer


def route_batches(app: Any, topics: Collection[str], handler: BatchHandler,
                  wanted: Callable[[], tuple[tuple[str, int], ...]] | None = None,
                  log_ends: LogEndsAsk | None = None,
                  again: Callable[[], tuple[int, ...]] | None = None) -> None:
    """Deliver the records of `topics` to `handler` in batches (see the module's doc); the
    (topic, partition)s `wanted()` names (the handler waits for them) first. `log_ends`
    asks the brokers for the log ends the handler is given (default: through the consumer).
    The partitions `again()` names are handed to the handler again every 20 ms with no
    records and fresh log ends, even if nothing new arrives (it waits on time there)."""
    app.batch_route = (frozenset(topics), handler)
    app.batch_wanted = wanted
    app.batch_log_ends = log_ends
    app.batch_again = again


def route_changelogs(app: Any, apply: Callable[[Any, TP, list[Any]], bool]) -> None:
    """Hand each fetch's records of the tables' changelogs to `apply(app, tp, records)`,
    which returns False for those Faust's own path should take."""
    app.changelog_route = apply



def use_fetch_max_wait(ms: int) -> None:
    """Faust's aiokafka driver builds its consumer with fetch_max_wait_ms=1500, not a
    setting; give the consumers of this process `ms` instead."""
    import aiokafka

    base = getattr(aiokafka.AIOKafkaConsumer, "_warden_base", aiokafka.AIOKafkaConsumer)

    class Consumer(base):  # type: ignore[misc, valid-type]
        _warden_base = base

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["fetch_max_wait_ms"] = ms
            super().__init__(*args, **kwargs)

    aiokafka.AIOKafkaConsumer = Consumer  # type: ignore[misc]


def use_no_scan_marks() -> None:
    """Faust marks every agent, timer, task and page for venusian's scan (`app.discover`),
    which Warden never runs: its registrations are explicit. The first mark reads every
    loaded module's source path (inspect.getmodule): 0.2 s of a worker's start, before its
    group join. The marks are skipped."""
    from faust.utils import venusian

    venusian.attach = lambda *args, **kwargs: None  # type: ignore[assignment]


class WardenApp(faust.App):
    """Faust's app with the transport whose consumer delivers the hot topics in batches and
    whose producer's flush runs the app's checkpoint. `early_tasks` start with the app,
    before its consumer joins the group (Faust's own tasks start once it is ready)."""

    early_tasks: tuple[Callable[[], Awaitable[None]], ...] = ()
    # What Warden hangs on the app, read by the transport (each None until set):
    # route_batches' topics, handler, wanted partitions, log ends and partitions asked again
    batch_route: tuple[frozenset[str], BatchHandler] | None = None
    batch_wanted: Callable[[], tuple[tuple[str, int], ...]] | None = None
    batch_log_ends: LogEndsAsk | None = None
    batch_again: Callable[[], tuple[int, ...]] | None = None
    # route_changelogs' apply(app, tp, records)
    changelog_route: Callable[[Any, TP, list[Any]], bool] | None = None
    # run by every producer flush, before offsets are committed (agents.runtime.Checkpoint)
    checkpoint: Callable[[], Awaitable[None]] | None = None
    # (topic, partition) -> the input offset a restore goes on from (streams.checkpoints), None: the committed one
    restored_input_offset: Callable[[str, int], int | None] | None = None

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)

    async def on_start(self) -> None:
        await super().on_start()
        for task in self.early_tasks:
            self.add_future(task())


class QuickTableManager(TableManager):
    """Faust's table manager sleeps a second before starting recovery, so that tables
    declared late can register; every Warden table is declared at import, so it need not."""

    async def on_start(self) -> None:
        await self.sleep(0.05)
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


