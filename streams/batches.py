"""A batch path for the hot topics, inside Faust's consumer.

Faust hands every record to its agents one at a time: a `Message` and an `Event` are
built, the conductor awaits flow control and the producer buffer, the record is put on
the agent's queue, the stream takes it off, and the drain loop awaits all that through
`wait_first`, which schedules a task per record. The benchmark's do-nothing agent pays
~70 µs a record for it, more than Warden's whole decision path.

`BatchConsumer` keeps everything Faust's consumer does around the records (the group,
rebalancing, pausing, recovery of the tables' changelogs, offset commits) and changes
only how the records of the topics given to `App.batch_route` reach their handler: as
aiokafka returns them, one list per partition, in one call per fetch. Records of every
other topic (the changelogs while tables recover) take Faust's own path.

The handler acknowledges what it has processed with `Acks`, which does what
`Consumer.ack` does for a message, so Faust commits exactly those offsets (contiguous
runs from the committed offset) and at-least-once holds as before. The handler runs
without awaiting between the check of the rebalance generation and its records, so no
rebalance lands in the middle of one.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Collection

from faust.transport.drivers.aiokafka import Consumer as KafkaConsumer
from faust.transport.drivers.aiokafka import Transport as KafkaTransport
from faust.types import TP

# (topic partition, its records as aiokafka returns them: .offset .timestamp (ms) .key .value .headers)
Batch = list[tuple[TP, list[Any]]]
BatchHandler = Callable[[Batch, int], Awaitable[None]]


class Acks:
    """Acknowledge processed records to Faust's consumer, as `Consumer.ack` does for a message."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.committed = consumer._committed_offset
        self.index = consumer._acked_index
        self.acked = consumer._acked

    def ack(self, tp: TP, offset: int) -> None:
        committed = self.committed[tp]
        if committed is None or offset >= committed:
            index = self.index[tp]
            if offset not in index:
                index.add(offset)
                self.acked[tp].append(offset)
                self.consumer._n_acked += 1


class BatchConsumer(KafkaConsumer):
    """Faust's aiokafka consumer, delivering the batch-routed topics' records in batches."""

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by Faust's fetcher
        route = getattr(self.app, "batch_route", None)
        if route is None:
            return await super()._drain_messages(fetcher)
        topics, handler = route
        changelogs = getattr(self.app, "changelog_route", None)
        callback = self.callback
        to_message = self._to_message
        read_offset = self._read_offset
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        app = self.app
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if not records or self.should_stop:
                    continue
                generation = app.consumer_generation_id
                batch: Batch = []
                for tp, recs in records.items():
                    if not self.flow_active or app.consumer_generation_id != generation:
                        break
                    if active is not None and tp not in active and tp not in self._buffered_partitions:
                        continue
                    last = read_offset[tp]
                    if last is not None and recs[0].offset < last:
                        recs = [r for r in recs if r.offset >= last]  # read already: dropped, as Faust does
                        if not recs:
                            continue
                    if tp.topic in topics:
                        await self._note_gaps(tp, last, recs)
                        batch.append((tp, recs))
                        read_offset[tp] = recs[-1].offset
                    elif changelogs is not None and changelogs(app, tp, recs):
                        read_offset[tp] = recs[-1].offset
                    else:
                        for r in recs:
                            if not self.flow_active or app.consumer_generation_id != generation:
                                break
                            await self.wait_first(callback(to_message(tp, r)), self.suspend_flow.wait())
                            read_offset[tp] = r.offset
                if batch and self.flow_active and app.consumer_generation_id == generation:
                    await handler(batch, generation)
                commit_every = self._commit_every
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise

    async def _note_gaps(self, tp: TP, last: int | None, recs: list[Any]) -> None:
        """Offsets with no record (compacted away, transaction markers) count as acked, as
        Faust's own drain loop makes them, or commits would stop at the first."""
        previous = last
        for r in recs:
            if previous is not None and r.offset - previous > 1:
                await self._add_gap(tp, previous + 1, r.offset - 1)
            previous = r.offset


class BatchTransport(KafkaTransport):
    Consumer = BatchConsumer


def route_batches(app: Any, topics: Collection[str], handler: BatchHandler) -> None:
    """Deliver the records of `topics` to `handler` in batches (see the module's doc)."""
    app.batch_route = (frozenset(topics), handler)


def route_changelogs(app: Any, apply: Callable[[Any, TP, list[Any]], bool]) -> None:
    """Hand each fetch's records of the tables' changelogs to `apply(app, tp, records)`,
    which returns False for those Faust's own path should take."""
    app.changelog_route = apply
