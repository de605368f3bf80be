"""The benchmark's baseline (b): a Faust agent that does nothing, on Warden's input topics,
with Warden's own Faust settings and event loop. Run as a process by `warden bench`:

    WARDEN_BENCH_EXPECT=N python -m bench.faust_baseline

It writes {"events": N, "seconds": S} (first event to the N-th) as JSON to the file named
by WARDEN_BENCH_RESULT (Faust takes over stdout) and exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import faust

from bench.rss import rss_bytes
from streams.app import app_options
from streams.contract import topics as T
from streams.contract.settings import Settings, load_settings
from streams.faust_internals import use_fetch_max_wait


def build(settings: Settings, expect: int) -> faust.App:
    """The do-nothing app: Warden's Faust settings, one agent counting the input records."""
    use_fetch_max_wait(settings.fetch_max_wait_ms)
    app = faust.App(f"{settings.topic_prefix}{settings.app_id}", **app_options(settings))
    inputs = app.topic(*[settings.topic(t) for t in T.INPUT_TOPICS], key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    seen = [0, 0.0]

    async def do_nothing(stream: Any) -> None:
        async for _ in stream.events():
            seen[0] += 1
            if seen[0] == 1:
                seen[1] = time.perf_counter()
            if seen[0] >= expect:
                seconds = time.perf_counter() - seen[1]
                with open(os.environ["WARDEN_BENCH_RESULT"], "w") as fh:
                    json.dump({"events": seen[0], "seconds": seconds, "peak_rss": rss_bytes()}, fh)
                os._exit(0)

    app.agent(inputs, name="do_nothing")(do_nothing)
    return app


def main() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # as the worker does, before any loop exists
    settings = load_settings()
    Path(settings.app_data_dir).mkdir(parents=True, exist_ok=True)
    app = build(settings, int(os.environ.get("WARDEN_BENCH_EXPECT", "0")))
    sys.argv = ["bench-faust", "--loop", "uvloop", "worker", "--loglevel", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
