"""Writer epochs on changelog records, and the fence that keeps an earlier owner's late
writes out of a restore."""

from __future__ import annotations

import logging
from typing import Any

from faust.types import TP

log = logging.getLogger("warden")
EPOCH_HEADER = "warden-epoch"
CHECKPOINT_HEADER = "warden-checkpoint"  # its sequence number within the epoch (streams.checkpoints)
Stamp = tuple[int | None, int | None]  # (epoch, checkpoint sequence) of a changelog record


class EpochFence:
    """Keeps a paused worker's late changelog writes out of the tables.

    A worker frozen past its group session (SIGSTOP, a stalled VM) loses its partitions;
    their new owner restores the tables from the changelogs and goes on. When the old
    worker wakes, what it had already handed to its producer (librdkafka sends it at once,
    from its own thread) still reaches the changelogs, after the new owner's writes: state
    older than theirs, which the next restore would take as the newest. Without
    transactions nothing on the broker refuses those writes, so the readers do: every
    changelog record carries its writer's epoch (the group generation it was written in,
    or one more than any epoch its writer had read on that partition, whichever is
    higher), and a record with an epoch lower than one already read on its changelog
    partition is a late write of an earlier owner, and is skipped.

    A partition re-read from an earlier offset (a restore from the start) is judged
    afresh. A persistent store restarted from the offset it holds knows no epoch before
    it, so a late write just after that offset is not caught there."""

    def __init__(self) -> None:
        self.top: dict[TP, int] = {}  # changelog partition -> highest epoch read
        self.read_to: dict[TP, int] = {}  # changelog partition -> last offset judged
        self.skipped = 0

    def epoch(self, partition: int, generation: int) -> int:
        """The epoch this worker writes `partition`'s changelogs with now."""
        seen = max((e for tp, e in self.top.items() if tp.partition == partition), default=-1)
        return generation if generation > seen else seen + 1

    def admit(self, tp: TP, records: list[Any]) -> list[Any]:
        """The records of `records` (one changelog partition, in offset order) to apply."""
        return self.admit_stamped(tp, records, [stamp_of(r) for r in records])[0]

    def admit_stamped(self, tp: TP, records: list[Any], stamps: list[Stamp]) -> tuple[list[Any], list[Stamp]]:
        """`admit`, given each record's stamp (read once, for the checkpoint staging too):
        the records to apply and their stamps."""
        if records[0].offset <= self.read_to.get(tp, -1):
            self.top.pop(tp, None)  # read again from earlier: judged afresh
        self.read_to[tp] = records[-1].offset
        top = self.top.get(tp, -1)
        kept: list[Any] = []
        kept_stamps: list[Stamp] = []
        skipped = 0
        for r, stamp in zip(records, stamps, strict=True):
            epoch = stamp[0]
            if epoch is None or epoch >= top:
                kept.append(r)
                kept_stamps.append(stamp)
                if epoch is not None:
                    top = epoch
            else:
                skipped += 1
        self.top[tp] = top
        if skipped:
            self.skipped += skipped
            log.warning("%s[%d]: skipped %d records written after epoch %d by an earlier owner of the "
                        "partition (a paused worker's late writes)", tp.topic, tp.partition, skipped, top)
        return kept, kept_stamps

    def clear(self) -> None:
        self.top.clear()
        self.read_to.clear()


def stamp_of(record: Any) -> Stamp:
    """(epoch, checkpoint sequence) of a changelog record, each None where its header is
    missing or unreadable (written before they were named), in one pass over its headers."""
    epoch = seq = None
    for key, value in record.headers or ():
        if key == EPOCH_HEADER:
            epoch = _int(value)
        elif key == CHECKPOINT_HEADER:
            seq = _int(value)
    return epoch, seq


def _int(raw: bytes) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None
