"""`make chaos`: the full chaos trials, a table of what was done and what differed.

    python -m tests.chaos [--trials N] [--seeds N] [--seed S] [--only N]

Each trial starts its own consumer group on one Tansu broker (or KAFKA_BOOTSTRAP_SERVERS
with WARDEN_TEST_BROKER=external), feeds 80 sellers' 12 days (an ordinary producer, the
workers reading meanwhile) while workers join, leave, are killed (-9), one after the other
or at random, and paused past their session (SIGSTOP, then SIGCONT: a zombie that wakes
after its partitions moved), and compares every enforcement record with the decision
core's replay of the same history. Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stack.embedded import free_port, start_tansu, stop
from tests.chaos import harness as H


@dataclass
class Trial:
    name: str
    clock: str
    seed: int
    initial: int
    faults: list[tuple[float, H.Fault]]
    all_at_once: bool = False
    day_pause_s: float = 1.5


def trials(base_seed: int) -> list[Trial]:
    out = []
    rng = random.Random(base_seed)

    def kills(n: int, lo: float = 0.05, hi: float = 0.95,
              names: list[str] | None = None) -> list[tuple[float, H.Fault]]:
        return [(rng.uniform(lo, hi), H.kill_restart(names)) for _ in range(n)]

    out.append(Trial("join, join, leave, kills", "event", base_seed + 1, 1,
                     [(0.02, H.join("w1")), (0.3, H.join("w2")), (0.6, H.leave("w2")), *kills(7)]))
    # the paused worker holds partitions and is busy when it freezes, with no rebalance under
    # way (a member frozen inside a JoinGroup is waited for, not dropped); the join and the
    # kills come after it wakes, and spare it
    out.append(Trial("zombie (SIGSTOP 12 s), kills", "event", base_seed + 2, 2,
                     [(0.2, H.pause("w0", 12.0)), (0.85, H.join("w2")), *kills(7, 0.86, 0.99, names=["w1", "w2"])]))
    out.append(Trial("three workers, kills", "event", base_seed + 3, 3, kills(7)))
    out.append(Trial("wall clock, faster than real time", "wall", base_seed + 4, 2,
                     [(0.1, H.join("w2")), *kills(5, 0.05, 0.8)], all_at_once=True, day_pause_s=0.5))
    # two workers, each killed in turn about every 8 s while the days flow (12 days, 7 s a day)
    alternate = H.kill_alternating(["w0", "w1"])
    out.append(Trial("two workers, 10 kills in turn", "event", base_seed + 5, 2,
                     [((4.0 + 8.0 * i) / 84.0, alternate) for i in range(10)], day_pause_s=7.0))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=int(os.environ.get("WARDEN_CHAOS_SEED", "1000")))
    parser.add_argument("--trials", type=int, default=5, help="run the first N trials")
    parser.add_argument("--seeds", type=int, default=3, help="run every trial with N seeds")
    parser.add_argument("--only", type=int, help="run trial N alone")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="warden-chaos-"))
    external = os.environ.get("WARDEN_TEST_BROKER") == "external"
    tansu = None
    if external:
        broker = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    else:
        port = free_port()
        tansu = start_tansu(port, tmp / "broker.log")
        broker = f"127.0.0.1:{port}"
    rows = []
    started = time.monotonic()
    failed = False
    try:
        chosen = [(i, t) for run in range(args.seeds)
                  for i, t in enumerate(trials(args.seed + 100 * run)[: args.trials])
                  if args.only is None or i + 1 == args.only]
        for i, trial in chosen:
            print(f"trial {i + 1}: {trial.name} ({trial.clock} clock, seed {trial.seed})", flush=True)
            events = H.history(trial.seed, 80, 12, H.end_of_history(12))
            where = tmp / f"trial{i + 1}-seed{trial.seed}"
            cluster = H.Cluster(broker, where, clock=trial.clock)
            where.mkdir()
            try:
                outcome: H.Outcome | None = H.run_trial(
                    cluster, events, seed=trial.seed, faults=trial.faults, initial=trial.initial,
                    day_pause_s=trial.day_pause_s, all_at_once=trial.all_at_once,
                    progress=lambda line: print(line, flush=True))
            except AssertionError as exc:  # a trial that did not finish: say so, go on with the next
                print(f"  trial {i + 1} did not finish: {exc}", flush=True)
                outcome = None
            finally:
                cluster.stop_all()
            if outcome is None:
                failed = True
                rows.append((f"{trial.name} #{trial.seed}", trial.clock, len(events), cluster.tally.kills,
                             f"{cluster.tally.pauses}/-", cluster.tally.joins, cluster.rebalances(), 0,
                             "did not finish", "-", "-", "-"))
                continue
            bad = outcome.mismatches + len(outcome.reissued) + len(outcome.reliable_actions)
            fenced = len(cluster.logs_contain("lost its group membership"))
            failed = failed or bad > 0
            rows.append((f"{trial.name} #{trial.seed}", trial.clock, len(events), outcome.tally.kills,
                         f"{outcome.tally.pauses}/{fenced}",
                         outcome.tally.joins, outcome.rebalances,
                         len(H.keyed(outcome.expected, outcome.fields)),
                         outcome.mismatches, len(outcome.reissued), len(outcome.reliable_actions),
                         round(outcome.seconds)))
            if bad:
                print(outcome.describe(), flush=True)
    finally:
        if tansu is not None:
            stop(tansu)
    header = ("trial", "clock", "events", "kills", "paused/fenced", "joins", "rebalances",
              "decisions compared",
              "mismatches", "re-issued", "reliable hit", "s")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=False)))
    total = [sum(r[i] for r in rows if isinstance(r[i], int)) for i in (3, 6, 7, 8)]
    print(f"{len(rows)} trials, {total[0]} kills, {total[1]} rebalances, "
          f"{total[2]} decisions compared, {total[3]} mismatches; {time.monotonic() - started:.0f} s"
          f" (logs under {tmp})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
