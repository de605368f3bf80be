"""The peer of (c): what a user would write instead of Warden, in quix-streams.

A quix-streams application over the same input topics: each record's Avro decoded as a
user would (fastavro, the writer's schema found by the single-object fingerprint), and
in its RocksDB state (changelogged, at-least-once, commits every 5 s as Warden's) a
counter per seller and a flag per order. No windows, no rules, no outputs: far less
than Warden does. It runs in a virtualenv of its own (bench.peer), as quix-streams pins
a confluent-kafka older than Warden's, and writes {"events", "seconds"} to
WARDEN_BENCH_RESULT once it has handled WARDEN_BENCH_EXPECT records.

Environment: KAFKA_BOOTSTRAP_SERVERS, WARDEN_TOPIC_PREFIX, WARDEN_BENCH_TOPICS (comma-
separated, unprefixed), WARDEN_BENCH_EXPECT, WARDEN_BENCH_RESULT, WARDEN_DATA_DIR.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from bench.rss import rss_bytes

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def readers() -> dict[bytes, Any]:
    """Each input schema, parsed, by its single-object header (C3 01 + fingerprint)."""
    out = {}
    for path in SCHEMAS.glob("*.avsc"):
        source = json.loads(path.read_text())
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(source), "CRC-64-AVRO"))
        out[b"\xc3\x01" + fp] = fastavro.parse_schema(source)
    return out


def main() -> None:
    # quix-streams is imported here: it is installed only in the peer's own virtualenv (and so
    # is this module's fastavro; Warden's own code is not imported)
    from quixstreams import Application
    from quixstreams.models.serializers import Deserializer

    class WardenAvro(Deserializer):  # type: ignore[misc]
        """Warden's input records (Avro, single-object encoding) as dicts."""

        def __init__(self) -> None:
            super().__init__()
            self.schemas = readers()

        def __call__(self, value: bytes, ctx: Any) -> Any:
            return fastavro.schemaless_reader(io.BytesIO(value[10:]), self.schemas[value[:10]], None)

    prefix = os.environ.get("WARDEN_TOPIC_PREFIX", "")
    expect = int(os.environ["WARDEN_BENCH_EXPECT"])
    app = Application(broker_address=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
                      consumer_group=f"peer-{os.getpid()}", auto_offset_reset="earliest",
                      state_dir=os.environ.get("WARDEN_DATA_DIR", "peer-state"), commit_interval=5.0,
                      loglevel="WARNING")
    seen = {"events": 0, "first": 0.0}

    def count(value: dict[str, Any], state: Any) -> None:
        if not seen["first"]:
            seen["first"] = time.perf_counter()
        state.set("events", state.get("events", 0) + 1)
        order_id = value.get("order_id") or next(iter(value.get("order_ids") or ()), None)
        if order_id is not None:
            state.set(f"order:{order_id}", True)
        seen["events"] += 1
        if seen["events"] >= expect:
            seconds = time.perf_counter() - seen["first"]
            with open(os.environ["WARDEN_BENCH_RESULT"], "w") as fh:
                json.dump({"events": seen["events"], "seconds": seconds, "peak_rss": rss_bytes()}, fh)
            app.stop()

    for name in os.environ["WARDEN_BENCH_TOPICS"].split(","):
        topic = app.topic(prefix + name, key_deserializer="str", value_deserializer=WardenAvro())
        app.dataframe(topic).update(count, stateful=True)
    app.run()


if __name__ == "__main__":
    main()
