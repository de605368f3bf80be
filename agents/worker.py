"""A worker, assembled by one function from the settings: `build_worker(settings)`.

Importing this module (or any other of Warden's) makes nothing: no app, no producer, no
Redis client, no thread, no file read. `build_worker` makes the Faust app and its topics,
the policy, the tables, the decision core, the pipeline, the producers, the Redis view,
the checkpoint, the merge and the agent, timers and pages, and returns them in one
`Worker` that owns them; the CLI then runs `worker.app.main()`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from agents.outputs import BrokerProbe, LogEnds, OutputProducer
from agents.pipeline import Pipeline
from agents.process_events import EventProcessor
from agents.report_health import report_health
from agents.runtime import (
    Checkpoint,
    InputReading,
    LoopWatch,
    StartupPhases,
    stop_on_delivery_failure,
    wall_clock_ms,
)
from agents.serve_api import register_pages
from agents.sweep_deadlines import sweep_deadlines
from agents.views import RedisView
from rules.policy import Policy, load_policy
from schemas.codec import Codec
from streams.app import Topics, build_app, declare_topics
from streams.contract import topics as T
from streams.contract.auth import check_secret
from streams.contract.settings import Settings
from streams.faust_internals import WardenApp, group_join_begun, route_batches, route_changelogs, session_timeout
from streams.observability import STARTUP_PHASE
from streams.table_setup import declare_tables, open_local_stores
from streams.table_stores import Changelogs
from streams.view_reader import ViewReader
from tables.engine import Engine


@dataclass
class Worker:
    """Everything one worker process runs, and the state it keeps."""

    settings: Settings
    app: WardenApp
    topics: Topics
    policy: Policy
    changelogs: Changelogs
    engine: Engine
    pipeline: Pipeline
    outputs: OutputProducer
    changelog_out: OutputProducer
    broker: BrokerProbe
    loop_watch: LoopWatch
    checkpoint: Checkpoint
    view: RedisView
    reading: InputReading
    processor: EventProcessor

    def resync_views(self) -> None:
        """Stage every view of this worker's sellers again, from the tables (Redis restarted)."""
        outcome = self.pipeline.views_of(self.engine.current_state(self.processor.owned()))
        self.view.forget_facts()
        self.view.stage(outcome.views)
        self.view.stage_actions(outcome.actions, outcome.action_orders, outcome.appeals)


def build_worker(settings: Settings) -> Worker:
    """Assemble a worker from `settings`: nothing connects until `worker.app` starts, except
    the librdkafka producers, which connect in their own threads when made."""
    app = build_app(settings)
    topics = declare_topics(app, settings)
    policy = load_policy(settings.policy_path)
    stores, changelogs = declare_tables(app, settings.partitions, settings.table_cache_entries)
    route_changelogs(app, changelogs.apply)  # table recovery in bulk, through the epoch fence
    codec = Codec(settings.schema_registry_url)
    engine = Engine(policy, stores, clock=settings.clock, wall_clock=wall_clock_ms, timezone=settings.timezone,
                    timer_limit=settings.table_cache_entries // 2 if settings.store == "rocksdb" else None)
    reading = InputReading(app)
    pipeline = Pipeline(
        engine, codec, settings.partitions, settings.topic_prefix,
        max_future_ms=int(settings.max_future_skew_s * 1000), wall_clock=wall_clock_ms,
        # stream time needs no guard: the merge (agents.merge) already orders the partition's
        # records by time; the wall clock does, or a backlog would be judged at today's time
        unread=reading.unread if settings.clock == "wall" else None,
    )
    reading.pipeline = pipeline
    engine.partition_of = pipeline.partition_of
    outputs = OutputProducer(settings.kafka_bootstrap_servers, on_failure=stop_on_delivery_failure,
                             topic_prefix=settings.topic_prefix, security=settings.kafka_client_config())
    changelog_out = OutputProducer(settings.kafka_bootstrap_servers, name="changelogs",
                                   on_failure=stop_on_delivery_failure, security=settings.kafka_client_config())
    # Each changelog partition's last record of a flush, produced once the rest is on the
    # broker, and the checkpoints' end markers: a persistent store (RocksDB) is told the
    # changelog offsets it holds from these records' delivery reports (a report for every
    # changelog record would cost a Python call each, ~3 a event).
    changelog_last = OutputProducer(settings.kafka_bootstrap_servers, reports=settings.store == "rocksdb",
                                    name="changelog-ends", on_failure=stop_on_delivery_failure,
                                    queue_size=100_000, security=settings.kafka_client_config())
    broker = BrokerProbe(outputs, settings.topic(T.ENFORCEMENTS))
    loop_watch = LoopWatch(session_timeout(app))
    StartupPhases(app)
    checkpoint = Checkpoint(app, changelogs, outputs, changelog_out, changelog_last, loop_watch,
                            failpoint=settings.failpoint)
    app.checkpoint = checkpoint  # run by every producer flush
    view = RedisView(settings.redis_url, settings.topic_prefix, codec, app, loop_watch)
    ticks_topic = settings.topic(T.TICKS)
    processor = EventProcessor(app, engine, pipeline, changelogs, checkpoint, view, reading,
                               publish=outputs.send, ticks_topic=ticks_topic,
                               max_idle_s=settings.max_task_idle_s, trace=settings.trace_decisions,
                               arrival_grace_s=settings.arrival_grace_ms / 1000)
    changelogs.input_positions = processor.input_positions  # what each checkpoint covers
    app.restored_input_offset = changelogs.staging.input_offset  # where inputs go on
    worker = Worker(settings, app, topics, policy, changelogs, engine, pipeline, outputs, changelog_out,
                    broker, loop_watch, checkpoint, view, reading, processor)
    view.resync = worker.resync_views
    _register(worker)
    return worker


log = logging.getLogger("warden")
HEALTH_INTERVAL_S = 2.0  # lag, restore progress, ready and live: refreshed this often


def _register(worker: Worker) -> None:
    """The worker's agent, timer, background tasks and pages, on its app."""
    app, settings, processor = worker.app, worker.settings, worker.processor
    route_batches(app, worker.topics.inputs.topics, processor.process_batch, processor.merge.waiting_for,
                  LogEnds(settings.kafka_bootstrap_servers, settings.kafka_client_config()),
                  again=processor.waiting_for_grace)

    async def process_events(stream: Any) -> None:
        await processor.process_events(stream)

    app.agent(worker.topics.inputs, name="agents.process_events.process_events")(process_events)

    ticks, tick_topic = worker.topics.outputs[T.TICKS], settings.topic(T.TICKS)

    async def tick() -> None:
        await sweep_deadlines(app, ticks, tick_topic, worker.engine)

    app.timer(interval=settings.tick_interval_s, name="agents.sweep_deadlines.sweep_deadlines")(tick)
    inputs = frozenset(t for t in worker.topics.inputs.topics if t != tick_topic)  # lag of the inputs

    async def health() -> None:
        report_health(app, processor, worker.broker, worker.loop_watch, inputs)
        processor.report_stalls()

    app.timer(interval=HEALTH_INTERVAL_S, name="agents.report_health.report_health")(health)

    async def declare_output_topics() -> None:
        """Create the output topics up front, with the configured partitions and compaction."""
        for topic in worker.topics.outputs.values():
            await topic.maybe_declare()

    async def open_stores() -> None:
        started = time.perf_counter()
        opened = await open_local_stores(worker.changelogs, settings.partitions,
                                         lambda: group_join_begun(app.consumer),
                                         meanwhile=worker.engine.calendar.load)
        if opened:
            STARTUP_PHASE.labels("open").set(time.perf_counter() - started)
            log.info("opened %d local table databases before the assignment (%.2f s after the start)", opened,
                     time.perf_counter() - started)

    app.early_tasks = (open_stores,)  # while the group join waits on the broker
    for task in (declare_output_topics, worker.view.run, worker.broker.run, worker.loop_watch.run):
        app.task(_no_args(task))
    reader = ViewReader(settings.redis_url, settings.topic_prefix, worker.view.codec)
    register_pages(app, reader, worker.broker, check_secret(settings.auth_secret), worker.loop_watch)


def _no_args(fn: Any) -> Any:
    """Faust passes the app to a task that takes an argument: these take none."""

    async def task() -> None:
        await fn()

    task.__name__ = task.__qualname__ = getattr(fn, "__qualname__", "task")
    return task
