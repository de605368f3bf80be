"""The checkpoint holds the tables' lock only while it reads their changes: records go on
while it waits for the broker; checkpoints run one at a time (unit: fakes, no broker)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from agents.runtime import Checkpoint


class Changelogs:
    def __init__(self, lock_of: Any) -> None:
        self.lock_of = lock_of
        self.changes = 1
        self.unended: dict[int, Any] = {}
        self.log: list[str] = []

    def pending(self) -> int:
        return self.changes

    async def take_pending_sliced(self, generation: int) -> list[Any]:
        assert self.lock_of().locked()  # the tables are read under the lock
        self.log.append("read")
        await asyncio.sleep(0)
        self.changes = 0
        self.unended = {0: []}
        return ["taken"]

    async def send_taken_sliced(self, taken: list[Any], produce: Any) -> list[Any]:
        assert taken == ["taken"]
        assert not self.lock_of().locked()  # encoded: records go on while it is handed over
        self.log.append("sent")
        return []

    def end_checkpoint(self, produce: Any) -> int:
        assert self.lock_of().locked()
        self.log.append("ended")
        self.unended = {}
        return 1

    async def persist(self) -> None:
        self.log.append("persisted")


class Producer:
    def __init__(self) -> None:
        self.broker = asyncio.Event()  # set: the broker has answered
        self.broker.set()

    def produce(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def flush(self) -> None:
        await self.broker.wait()


def test_records_go_on_while_the_checkpoint_waits_for_the_broker_and_checkpoints_run_one_at_a_time() -> None:
    async def scenario() -> None:
        outputs, changelog, last = Producer(), Producer(), Producer()
        checkpoint: Checkpoint
        changelogs = Changelogs(lambda: checkpoint.lock)
        watch = SimpleNamespace(paused_recently=lambda: False)
        app = SimpleNamespace(consumer_generation_id=1, consumer=None)
        checkpoint = Checkpoint(app, changelogs, outputs, changelog, last, watch)  # type: ignore[arg-type]
        checkpoint.freezer = SimpleNamespace(freeze_survivors=lambda: None)  # type: ignore[assignment]
        outputs.broker.clear()  # the broker is slow to answer
        first = asyncio.ensure_future(checkpoint())
        for _ in range(5):
            await asyncio.sleep(0)
        assert changelogs.log == ["read", "sent"]
        # the checkpoint waits for the broker: a record paused midway takes the tables' lock
        await asyncio.wait_for(checkpoint.lock.acquire(), 1)
        changelogs.changes = 1  # the record's changes, for the next checkpoint
        second = asyncio.ensure_future(checkpoint())
        checkpoint.lock.release()
        for _ in range(5):
            await asyncio.sleep(0)
        assert changelogs.log == ["read", "sent"]  # the second waits for the first to end
        outputs.broker.set()
        await asyncio.wait_for(asyncio.gather(first, second), 1)
        assert changelogs.log == ["read", "sent", "ended", "persisted", "read", "sent", "ended", "persisted"]

    asyncio.run(scenario())


def test_a_record_that_waited_for_a_checkpoint_which_fenced_the_worker_is_abandoned() -> None:
    import pytest

    from agents.process_events import EventProcessor, RecordAbandoned

    async def scenario() -> None:
        app = SimpleNamespace(consumer_generation_id=3)
        checkpoint = SimpleNamespace(lock=asyncio.Lock(), fenced_generation=None)
        reading = SimpleNamespace(has_unread=lambda *a: False, fetched=lambda *a: None, stalled=lambda *a: "",
                            answered=lambda *a: None)
        processor = EventProcessor(app, None, SimpleNamespace(guarded=()), SimpleNamespace(at=lambda p: None),  # type: ignore[arg-type]
                                   checkpoint, None, reading, lambda out: None, "ticks", 30.0)  # type: ignore[arg-type]
        # a record paused midway takes the lock when it is free, and holds it to its end
        await processor._turn_in_record(0)
        assert checkpoint.lock.locked()
        processor._end_record()
        assert not checkpoint.lock.locked()
        # a checkpoint holds it, finds the worker fenced and drops the tables: the record
        # waiting for it must not go on over the emptied tables
        await checkpoint.lock.acquire()
        waiting = asyncio.ensure_future(processor._turn_in_record(0))
        await asyncio.sleep(0)
        checkpoint.fenced_generation = 3
        checkpoint.lock.release()
        with pytest.raises(RecordAbandoned):
            await waiting
        assert not checkpoint.lock.locked()

    asyncio.run(scenario())
