"""The output producer never blocks the loop or recurses, and a failed delivery is final."""

from __future__ import annotations

import asyncio
import time

import pytest

from agents.outputs import DeliveryFailed, OutputProducer
from agents.pipeline import Outgoing
from stack.embedded import free_port


def test_a_full_queue_holds_records_in_order_and_a_failed_delivery_stops_the_flush() -> None:
    failures: list[str] = []
    out = OutputProducer(f"127.0.0.1:{free_port()}", on_failure=failures.append, topic_prefix="p.",
                         delivery_timeout_ms=1500, queue_size=10)  # nobody listens there
    for i in range(50):
        out.send(Outgoing("trust-safety.enforcements", b"k", str(i).encode()))
    assert len(out.backlog) == 40  # no BufferError, no recursion: the rest waits, in order
    assert [r[1] for r in out.backlog][:3] == [b"10", b"11", b"12"]
    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match="not delivered"):
        asyncio.run(out.flush())
    assert time.monotonic() - started < 30
    assert len(failures) == 1 and "p.trust-safety.enforcements" in failures[0]
