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

import uvloop

asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # as the worker does, before any loop exists
import faust  # noqa: E402

from streams import topics as T
from streams.app import app_options  # noqa: E402
from streams.settings import load_settings  # noqa: E402

settings = load_settings()
Path(settings.app_data_dir).mkdir(parents=True, exist_ok=True)
EXPECT = int(os.environ.get("WARDEN_BENCH_EXPECT", "0"))
app = faust.App(f"{settings.topic_prefix}{settings.app_id}", **app_options(settings))
inputs = app.topic(*[settings.topic(t) for t in T.INPUT_TOPICS], key_type=bytes, value_type=bytes,
                   key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
_seen = [0, 0.0]


@app.agent(inputs)
async def do_nothing(stream: Any) -> None:
    async for _ in stream.events():
        _seen[0] += 1
        if _seen[0] == 1:
            _seen[1] = time.perf_counter()
        if _seen[0] >= EXPECT:
            seconds = time.perf_counter() - _seen[1]
            with open(os.environ["WARDEN_BENCH_RESULT"], "w") as fh:
                json.dump({"events": _seen[0], "seconds": seconds}, fh)
            os._exit(0)


if __name__ == "__main__":
    sys.argv = ["bench-faust", "--loop", "uvloop", "worker", "--loglevel", "warn", "--without-web"]
    app.main()
