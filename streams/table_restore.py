"""A table restored from its changelog in bulk: a fetch's records at a time, through the
epoch fence (streams.epochs)."""

from __future__ import annotations

from typing import Any

from faust.types import TP

from streams.checkpoints import CheckpointStaging
from streams.epochs import EpochFence, stamp_of
from streams.faust_internals import (
    apply_to_table,
    changelogs_read_up,
    end_recovery,
    recovering_actives,
    recovery_offsets,
)


def apply_changelog(app: Any, tp: TP, records: list[Any], fence: EpochFence | None = None,
                    staging: CheckpointStaging | None = None) -> bool:
    """Apply a fetch's records of a table's changelog partition to the table in one go, as
    Faust's recovery would one record at a time (an Event, a queue and a task each, which
    cost more than the record's own work). Keeps the recovery's offsets
    and ends the recovery when it is complete. A `fence` keeps out late writes of an
    earlier owner (EpochFence); `staging` holds each record until its checkpoint is known
    to be complete (streams.checkpoints). False: not a changelog partition being recovered
    or followed (standby) here; Faust's own path takes it."""
    offsets = recovery_offsets(app, tp)
    if offsets is None:
        return False
    seen = offsets.get(tp)
    if seen is not None:
        records = [r for r in records if r.offset > seen]
        if not records:
            return True
    last = records[-1].offset
    stamps = [stamp_of(r) for r in records]  # each record's headers read once, here
    if fence is not None:
        records, stamps = fence.admit_stamped(tp, records, stamps)
    groups = [(tp, records)] if staging is None else staging.arrive(tp, records, stamps)
    for group_tp, group in groups:
        apply_to_table(app, group_tp, group)
    offsets[tp] = last
    if changelogs_read_up(app):
        if staging is not None:
            staging.finish({t.partition for t in recovering_actives(app)})
        end_recovery(app)
    return True
