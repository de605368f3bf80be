"""Checkpoints applied whole: a restore takes a checkpoint's table changes only once the
checkpoint is known to be complete.

A checkpoint (agents.runtime.Checkpoint) writes the changed keys of six tables, each to
its own changelog partition, then commits the input offsets. Without transactions a
worker killed in the middle leaves some of those writes on the broker and not others:
an order's new facts without its seller's figures that count them. The restoring owner
replays the inputs from the last commit, finds the order already up to date, and the
seller's figures never count it (seen in the chaos trials: a seller warned at 2/39
flawed orders whose 41st order had been written, but not counted).

So every changelog record names its checkpoint (the writer's epoch and a sequence
number), and once all of a checkpoint's records of a partition are on the broker, the
writer ends it with a marker on that partition of the clocks changelog (key
`\\0checkpoint:<epoch>`, value the sequence number). A reader applies a record only when
its checkpoint's marker has been read: records of a checkpoint whose marker is not there
yet wait; at the end of a restore, those of a checkpoint never ended are dropped, and
the inputs they came from are read again from the last commit, which lies before them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from faust.types import TP

from streams.epochs import CHECKPOINT_HEADER, Stamp, stamp_of

__all__ = ["CHECKPOINT_HEADER", "CheckpointStaging", "marker_key", "marker_value", "read_marker"]

log = logging.getLogger("warden")
MARKER_PREFIX = b"\x00checkpoint:"


def marker_key(epoch: int) -> str:
    return f"\x00checkpoint:{epoch}"


def marker_value(seq: int, inputs: dict[str, int] | None) -> bytes:
    """A marker's value: the checkpoint's sequence number and the input offsets its table
    changes cover (the next offset to handle of each input topic of the partition)."""
    return json.dumps({"seq": seq, "inputs": inputs or {}}, sort_keys=True).encode()


def read_marker(raw: bytes | None) -> tuple[int, dict[str, int] | None]:
    """(sequence number, input offsets or None) of a marker's value; an older marker's value
    is the bare sequence number."""
    if raw is None:
        raise ValueError("a marker without a value")
    value = json.loads(raw)
    if isinstance(value, int):
        return value, None
    inputs = value.get("inputs")
    return int(value["seq"]), ({str(t): int(o) for t, o in inputs.items()} if inputs else None)


class CheckpointStaging:
    """The restore's side: which checkpoints are complete, per partition and epoch, and the
    records waiting for their checkpoint's marker."""

    def __init__(self, marker_topic: str = "") -> None:
        self.marker_topic = marker_topic  # the clocks changelog's topic
        self.complete: dict[tuple[int, int], int] = {}  # (partition, epoch) -> highest complete seq
        # partition -> [(tp, epoch, seq, record)], in the order read
        self.waiting: dict[int, list[tuple[TP, int, int, Any]]] = {}
        self.dropped = 0
        # partition -> the input offsets of the newest checkpoint known on it (read in a
        # restore, or written by this worker): input topic -> the next offset to handle
        self.inputs: dict[int, dict[str, int]] = {}

    def arrive(self, tp: TP, records: list[Any], stamps: list[Stamp] | None = None) -> list[tuple[TP, list[Any]]]:
        """The records to apply now, by changelog partition, in the order to apply them:
        the waiting records a marker among `records` completes, then those of `records`
        whose checkpoint is complete. Markers themselves are never applied. `stamps`: each
        record's (epoch, sequence), if already read (streams.epochs.stamp_of)."""
        if stamps is None:
            stamps = [stamp_of(r) for r in records]
        partition = tp.partition
        out: list[tuple[TP, list[Any]]] = []
        now: list[Any] = []
        markers = tp.topic == self.marker_topic
        for r, (epoch, seq) in zip(records, stamps, strict=True):
            if markers and r.key is not None and r.key.startswith(MARKER_PREFIX):
                if now:
                    out.append((tp, now))
                    now = []
                out.extend(self._marker(partition, r))
                continue
            if epoch is None or seq is None or seq <= self.complete.get((partition, epoch), -1):
                now.append(r)
            else:
                self.waiting.setdefault(partition, []).append((tp, epoch, seq, r))
        if now:
            out.append((tp, now))
        return out

    def _marker(self, partition: int, marker: Any) -> list[tuple[TP, list[Any]]]:
        try:
            epoch = int(marker.key[len(MARKER_PREFIX):])
            seq, inputs = read_marker(marker.value)
        except (TypeError, ValueError, KeyError):
            log.warning("a checkpoint marker that cannot be read, at offset %s: ignored", marker.offset)
            return []
        key = (partition, epoch)
        if seq > self.complete.get(key, -1):
            self.complete[key] = seq
        if inputs is not None:
            self.inputs[partition] = inputs
        waiting = self.waiting.get(partition)
        if not waiting:
            return []
        released: list[tuple[TP, list[Any]]] = []
        kept: list[tuple[TP, int, int, Any]] = []
        unfinished = 0
        for item in waiting:
            tp, e, s, r = item
            if s <= self.complete.get((partition, e), -1):
                if released and released[-1][0] == tp:
                    released[-1][1].append(r)
                else:
                    released.append((tp, [r]))
            elif e < epoch:
                unfinished += 1  # an earlier owner's checkpoint that never ended: never applied
            else:
                kept.append(item)
        self.waiting[partition] = kept
        if unfinished:
            self._drop(partition, unfinished)
        return released

    def finish(self, partitions: set[int]) -> int:
        """A restore of `partitions` is complete: what still waits belongs to checkpoints that
        never ended (their writer stopped mid-way); it is dropped. Returns how many."""
        dropped = 0
        for partition in partitions:
            waiting = self.waiting.pop(partition, None)
            if waiting:
                dropped += len(waiting)
                self._drop(partition, len(waiting))
        return dropped

    def _drop(self, partition: int, n: int) -> None:
        self.dropped += n
        log.warning("partition %d: %d changelog records of a checkpoint that never ended (its writer "
                    "stopped mid-way) dropped; their inputs are read again from the last commit", partition, n)

    def describe(self, partition: int) -> str:
        """The checkpoints known complete on `partition`, as `epoch:seq` (a decision's trace)."""
        done = sorted((epoch, seq) for (p, epoch), seq in self.complete.items() if p == partition)
        return ", ".join(f"{epoch}:{seq}" for epoch, seq in done[-3:]) or "none"

    def input_offset(self, topic: str, partition: int) -> int | None:
        """Where the inputs of (topic, partition) go on from: the offset after the last record
        the newest checkpoint on the partition covers, or None if none says."""
        return self.inputs.get(partition, {}).get(topic)

    def clear(self) -> None:
        self.complete.clear()
        self.waiting.clear()
        self.inputs.clear()
