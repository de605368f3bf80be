"""The latency floor of (e): a raw consume -> produce pass-through on the same broker.

`python -m bench.floor` copies every record of one topic to another, same key, value and
partition, as fast as it arrives: a confluent-kafka consumer with Warden's fetch wait and
a producer with Warden's output settings (linger 5 ms, acks all). Nothing is decoded,
kept or decided. The probe's records through it take what the broker, the clients and
this machine cost at the same load; Warden's p99 over this one's is what Warden adds.

Environment: KAFKA_BOOTSTRAP_SERVERS, WARDEN_FLOOR_IN, WARDEN_FLOOR_OUT,
WARDEN_FLOOR_PARTITIONS, WARDEN_FETCH_MAX_WAIT_MS (default 20). It reads from each
partition's end when it starts and runs until terminated.
"""

from __future__ import annotations

import os
import signal

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition


def main() -> None:
    servers = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    source, target = os.environ["WARDEN_FLOOR_IN"], os.environ["WARDEN_FLOOR_OUT"]
    partitions = int(os.environ.get("WARDEN_FLOOR_PARTITIONS", "4"))
    consumer = Consumer({"bootstrap.servers": servers, "group.id": "warden-bench-floor", "enable.auto.commit": False,
                         "fetch.wait.max.ms": int(os.environ.get("WARDEN_FETCH_MAX_WAIT_MS", "20"))})
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 5, "acks": "all", "enable.idempotence": False,
                         "batch.num.messages": 10_000})
    consumer.assign([TopicPartition(source, p, OFFSET_END) for p in range(partitions)])
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    print("floor: ready", flush=True)
    try:
        while not stopping:
            for m in consumer.consume(1000, 0.05):
                partition = m.partition()
                if m.error() is None and partition is not None:
                    producer.produce(target, m.value(), m.key(), partition=partition)
            producer.poll(0)
    finally:
        producer.flush(5)
        consumer.close()


if __name__ == "__main__":
    main()
