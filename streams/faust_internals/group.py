"""What the app knows of its group membership and its tables' recovery, as Warden reads it:
the rebalance generation, whether a rebalance is under way, the partitions assigned as
active, the recovery's progress. Faust keeps these on attributes without a leading
underscore (`App.consumer_generation_id`, `App.rebalancing`, `PartitionAssignor
.assigned_actives`, `TableManager.recovery`); they are read only here."""

from __future__ import annotations

from typing import Any

from faust.types import TP


def rebalance_generation(app: Any) -> int:
    """The consumer's current rebalance generation (Faust's `consumer_generation_id`)."""
    return app.consumer_generation_id  # type: ignore[no-any-return]


def rebalancing(app: Any) -> bool:
    """Whether a rebalance is under way (from revocation until the recovery has ended)."""
    return bool(app.rebalancing)


def active_partitions(app: Any) -> set[TP]:
    """The topic partitions assigned to this worker as active (not standby)."""
    return set(app.assignor.assigned_actives())


def recovery_completed(app: Any) -> bool:
    """Whether the tables' recovery after the last assignment has completed."""
    return bool(app.tables.recovery.completed.is_set())


def restore_remaining(app: Any) -> int:
    """Changelog records the tables' recovery has still to read."""
    return int(app.tables.recovery.active_remaining_total())


def session_timeout(app: Any) -> float:
    """The group session's timeout, in seconds."""
    return float(app.conf.broker_session_timeout)


def changelog_topic_name(table: Any) -> str:
    """The name of a table's changelog topic."""
    return table.changelog_topic.get_topic_name()  # type: ignore[no-any-return]
