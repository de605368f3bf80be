"""The broker's own holds in (f): a bare group member, killed and replaced as the worker is.

`python -m bench.bare_member` joins a consumer group with an aiokafka consumer (the client
under Faust) and the worker's group settings (session 8 s with an instance id, heartbeat
0.5 s, rebalance 6 s), writes the wall-clock time it was assigned partitions to
WARDEN_BARE_RESULT, and then only heartbeats, until killed. Killed with -9 and started
again with the same instance id, its second assignment's time less the kill's is what the
broker itself holds a replacement for (on Tansu, its holds of a static member's join),
with no table, no recovery and no record in it: (f)'s "caught up" less this is Warden's.

Environment: KAFKA_BOOTSTRAP_SERVERS, WARDEN_BARE_TOPIC, WARDEN_BARE_GROUP,
WARDEN_INSTANCE_ID (optional: a dynamic member without), WARDEN_BARE_RESULT.
"""

from __future__ import annotations

import asyncio
import os
import time

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, path: str) -> None:
        self.path = path

    async def on_partitions_revoked(self, revoked: object) -> None:
        return None

    async def on_partitions_assigned(self, assigned: object) -> None:
        with open(self.path, "a") as fh:
            fh.write(f"{time.time()}\n")


async def main() -> None:
    instance = os.environ.get("WARDEN_INSTANCE_ID") or None
    consumer = AIOKafkaConsumer(
        bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"], group_id=os.environ["WARDEN_BARE_GROUP"],
        group_instance_id=instance, session_timeout_ms=8000 if instance else 6000, heartbeat_interval_ms=500,
        rebalance_timeout_ms=6000, enable_auto_commit=False, auto_offset_reset="latest")
    consumer.subscribe([os.environ["WARDEN_BARE_TOPIC"]], listener=_Assigned(os.environ["WARDEN_BARE_RESULT"]))
    await consumer.start()
    while True:
        await consumer.getmany(timeout_ms=500)


if __name__ == "__main__":
    asyncio.run(main())
