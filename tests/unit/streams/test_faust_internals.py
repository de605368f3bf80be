"""Every private name of Faust and aiokafka that streams/faust_internals/ relies on still
exists, with the shape it is used with: an upgrade of either fails here, in one place."""

from __future__ import annotations

import contextvars
import inspect
from typing import Any

import aiokafka
import pytest
from aiokafka.consumer.fetcher import Fetcher, FetchError, FetchResult
from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust import App
from faust.serializers import codecs
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import _current_event
from faust.tables.base import Collection
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

CHECKED_AGAINST = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


def test_the_versions_these_names_were_checked_against() -> None:
    """Every name below was checked against these versions. An upgrade fails here first:
    check the names again (and the copies of Faust's and aiokafka's code in
    streams/faust_internals), then move the versions here and in pyproject.toml."""
    from importlib.metadata import version

    installed = {name: version(name) for name in CHECKED_AGAINST}
    assert installed == CHECKED_AGAINST


def params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


METHODS = [  # (owner, name, parameter names)
    (faust_consumer.Consumer, "_drain_messages", ["self", "fetcher"]),
    (faust_consumer.Consumer, "_wait_next_records", ["self", "timeout"]),
    (faust_consumer.Consumer, "_add_gap", ["self", "tp", "offset_from", "offset_to"]),
    (faust_consumer.Consumer, "_to_message", ["self", "tp", "record"]),
    (faust_consumer.Consumer, "perform_seek", ["self"]),
    (faust_consumer.Consumer, "highwaters", ["self", "partitions"]),
    (faust_aiokafka.AIOKafkaConsumerThread, "_ensure_consumer", ["self"]),
    (faust_aiokafka.AIOKafkaConsumerThread, "seek_to_committed", ["self"]),
    (faust_aiokafka.AIOKafkaConsumerThread, "seek_to_beginning", ["self", "partitions"]),
    (faust_aiokafka.AIOKafkaConsumerThread, "call_thread", ["self", "fun", "args", "kwargs"]),
    (faust_aiokafka.AIOKafkaConsumerThread, "seek", ["self", "partition", "offset"]),
    (faust_aiokafka.AIOKafkaConsumerThread, "earliest_offsets", ["self", "partitions"]),
    (faust_consumer.Consumer, "assignment", ["self"]),
    (faust_aiokafka.Producer, "flush", ["self"]),
    (App, "_new_transport", ["self"]),
    (TableManager, "_update_channels", ["self"]),
    (Recovery, "_set_recovery_ended", ["self"]),
    (Recovery, "flush_buffers", ["self"]),
    (Recovery, "need_recovery", ["self"]),
    (Collection, "_new_changelog_topic", ["self", "retention", "compacting", "deleting"]),
    (RocksDBStore, "_visible_items", ["self", "db"]),
    (RocksDBStore, "_db_for_partition", ["self", "partition"]),
    (RocksDBStore, "partition_path", ["self", "partition"]),
    (aiokafka.AIOKafkaConsumer, "highwater", ["self", "partition"]),
    (faust_aiokafka.Consumer, "_new_consumer_thread", ["self"]),
    (faust_aiokafka.AIOKafkaConsumerThread, "_fetch_records",
     ["self", "consumer", "active_partitions", "timeout", "max_records"]),
    (Fetcher, "fetched_records", ["self", "partitions", "timeout", "max_records"]),
    (Fetcher, "_notify", ["self", "future"]),
    (Fetcher, "_create_fetch_waiter", ["self"]),
    (FetchResult, "getall", ["self", "max_records"]),
    (FetchResult, "has_more", ["self"]),
    (FetchError, "check_raise", ["self"]),
]

ATTRIBUTES = [  # (owner, where they are set, names)
    (faust_consumer.Consumer, "__init__", ["_committed_offset", "_read_offset", "_acked", "_acked_index",
                                            "_n_acked", "_gap", "_buffered_partitions", "_commit_every",
                                            "_active_partitions", "_paused_partitions"]),
    (faust_consumer.ThreadDelegateConsumer, "__init__", ["_thread"]),
    (aiokafka.AIOKafkaConsumer, "__init__", ["_coordinator", "_subscription", "_fetcher", "_closed"]),
    (Fetcher, "__init__", ["_records", "_subscriptions", "_wait_consume_future", "_closed", "_in_flight"]),
    (MemoryStore, "__post_init__", ["_key_partition"]),
    (RocksDBStore, "__init__", ["_dbs"]),
    (GroupCoordinator, "__init__", ["member_id", "generation"]),
    (Recovery, "__init__", ["active_offsets", "standby_offsets", "active_highwaters", "standby_highwaters"]),
]


@pytest.mark.parametrize("owner, name, expected", METHODS, ids=[f"{o.__name__}.{n}" for o, n, _ in METHODS])
def test_the_methods_relied_on_exist_with_their_parameters(owner: type, name: str,
                                                             expected: list[str]) -> None:
    assert hasattr(owner, name), f"{owner.__module__}.{owner.__name__}.{name} is gone"
    assert params(getattr(owner, name))[: len(expected)] == expected


@pytest.mark.parametrize("owner, where, names", ATTRIBUTES, ids=[o.__name__ for o, _, _ in ATTRIBUTES])
def test_the_attributes_relied_on_are_still_set(owner: type, where: str, names: list[str]) -> None:
    source = "".join(inspect.getsource(cls) for cls in owner.__mro__
                     if cls.__module__.startswith(("faust", "aiokafka")))
    for name in names:
        assert f"self.{name} =" in source or f"self.{name}: " in source, f"{owner.__name__}.{name} is no longer set"


def test_the_table_manager_has_its_recovery() -> None:
    assert isinstance(TableManager.__dict__.get("recovery"), property)


def test_the_module_level_names_relied_on() -> None:
    assert isinstance(_current_event, contextvars.ContextVar)
    codec = codecs.get_codec("json")
    assert hasattr(codec, "_loads") and hasattr(codec, "nodes")
    # the commit's scan of acknowledged offsets, replaced by use_quick_commit_offsets
    assert callable(faust_consumer.consecutive_numbers)
    assert "next(consecutive_numbers(acked))" in inspect.getsource(faust_consumer.Consumer._new_offset)


def test_the_join_marker_wraps_aiokafkas_group_join_once() -> None:
    from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance

    from streams.faust_internals import use_join_marker

    # the coordinator's rebalance adapter, and the coordinator it holds
    assert "self._coordinator = coordinator" in inspect.getsource(CoordinatorGroupRebalance.__init__)
    use_join_marker()
    use_join_marker()  # twice (a second app in the process): still one wrapper
    join = CoordinatorGroupRebalance.perform_group_join
    assert join.__wrapped__.__qualname__ == "CoordinatorGroupRebalance.perform_group_join"
    assert "JoinGroupRequest(" in inspect.getsource(join.__wrapped__)


def test_faust_marks_for_the_scan_through_the_module_replaced() -> None:
    import faust.app.base
    from faust.utils import venusian

    assert faust.app.base.venusian is venusian  # looked up at each mark: the replacement is seen
    assert "venusian.attach(" in inspect.getsource(faust.app.base.App.agent)
    assert "venusian.attach(" in inspect.getsource(faust.app.base.App._task)


def test_what_batch_boundaries_are_read_from() -> None:
    """Boundaries: an answer's time and position per partition, set where the fetcher takes
    an answer (only one at the position), and the position after a drained answer."""
    from aiokafka.consumer.subscription_state import Assignment

    assert "self._tp_state = {}" in inspect.getsource(Assignment.__init__)
    proc = inspect.getsource(Fetcher._proc_fetch_request)
    assert "tp_state.position != fetch_offset" in proc  # an answer for another position is dropped
    assert "tp_state.timestamp = now_ms" in proc
    assert "self._records[tp] = FetchResult(" in proc  # an answer with records is held
    assert "self._partition_records = None" in inspect.getsource(FetchResult.getall)


def test_aiokafkas_partition_state_reads_relied_on() -> None:
    from aiokafka.consumer.subscription_state import Assignment, SubscriptionState, TopicPartitionState

    assert isinstance(SubscriptionState.__dict__.get("subscription"), property)
    assert hasattr(Assignment, "state_value")
    for name in ("position", "paused", "has_valid_position", "awaiting_reset"):
        assert isinstance(TopicPartitionState.__dict__.get(name), property), name


def test_the_group_and_recovery_state_read_by_faust_internals_group() -> None:
    """streams.faust_internals.group: the app's generation and rebalancing flag, the
    assignor's active partitions, the recovery's progress, a table's changelog topic
    (faust-streaming 0.15.3)."""
    from faust.app.base import App as BaseApp
    from faust.assignor.partition_assignor import PartitionAssignor
    from faust.types.app import AppT
    from faust.types.settings import Settings

    assert AppT.__annotations__.get("consumer_generation_id") in (int, "int")
    assert AppT.__annotations__.get("rebalancing") in (bool, "bool")
    assert "self.rebalancing = True" in inspect.getsource(BaseApp)  # set on revocation
    # the rebalance listener sets the generation on the app when partitions are assigned
    assert "app.consumer_generation_id = generation" in inspect.getsource(faust_aiokafka)
    assert callable(PartitionAssignor.assigned_actives)
    assert "self.completed = Event(" in inspect.getsource(Recovery.__init__)
    assert callable(Recovery.active_remaining_total)
    assert isinstance(Settings.__dict__.get("broker_session_timeout"), property) or \
        "broker_session_timeout" in inspect.getsource(Settings)
    assert isinstance(Collection.__dict__.get("changelog_topic"), property)
