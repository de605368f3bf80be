"""The peer row of `warden bench`: a quix-streams stateful application (bench.peer_quix)
over the same input topics, so (c) is also a ratio to what a user would write instead.

quix-streams pins a confluent-kafka older than Warden's, so it cannot share Warden's
environment (an optional extra would not resolve): it is installed, at the version pinned
in pyproject.toml ([tool.warden.bench] peer), into a virtualenv of its own under the
bench's directory the first time (WARDEN_BENCH_PEER_VENV to keep it elsewhere), and run
there as a process with Warden's source on its path for the Avro decoder.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tomllib
import uuid
import venv
from pathlib import Path
from typing import Any

from bench.stack import ROOT, BenchFailure, Context, ratio, spread_note
from streams.contract import topics as T


def peer_requirements() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["tool"]["warden"]["bench"]["peer"])


def peer_python(ctx: Context) -> Path:
    """The peer's interpreter, its virtualenv made and filled when missing or outdated."""
    home = Path(os.environ.get("WARDEN_BENCH_PEER_VENV") or ROOT / ".warden" / "bench-peer").resolve()
    python = home / "bin" / "python"
    wanted = "\n".join(peer_requirements())
    stamp = home / "requirements.txt"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    ctx.progress(f"peer: installing {', '.join(peer_requirements())} into {home}")
    venv.create(home, with_pip=True, clear=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *peer_requirements()],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchFailure(f"peer: could not install {wanted!r} into {home}: {done.stderr.strip()[-400:]}")
    stamp.write_text(wanted)
    return python


def section_peer(ctx: Context, report: Any, prefix: str) -> None:
    assert ctx.data is not None
    python = peer_python(ctx)
    runs, peaks = [], []
    for r in range(ctx.plan.repeats):
        ctx.progress(f"peer: quix-streams stateful application, run {r + 1}/{ctx.plan.repeats}")
        result = ctx.workdir / f"peer-{r}.json"
        log = ctx.workdir / f"peer-{r}.log"
        env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=ctx.servers, WARDEN_TOPIC_PREFIX=prefix,
                   WARDEN_BENCH_TOPICS=",".join(T.INPUT_TOPICS), WARDEN_BENCH_EXPECT=str(len(ctx.data)),
                   WARDEN_BENCH_RESULT=str(result),
                   WARDEN_DATA_DIR=str(ctx.workdir / f"peer-state-{uuid.uuid4().hex[:6]}"),
                   PYTHONPATH=str(ROOT))
        env.pop("VIRTUAL_ENV", None)
        with open(log, "ab") as out:
            try:
                done = subprocess.run([str(python), "-m", "bench.peer_quix"], env=env, stdout=out,
                                      stderr=subprocess.STDOUT, timeout=900)
            except subprocess.TimeoutExpired:
                raise BenchFailure(f"peer: the quix-streams application did not finish in 900 s; see {log}") from None
        if not result.exists():
            raise BenchFailure(f"peer: the quix-streams application exited (code {done.returncode}) "
                               f"without a result; see {log}")
        figures = json.loads(result.read_text())
        runs.append(figures["events"] / figures["seconds"])
        peaks.append(figures.get("peak_rss", 0))
    rate = statistics.median(runs)
    ctx.figures["peer"] = rate
    ctx.figures["rss_peer"] = statistics.median(peaks)
    report.add("peer", "quix-streams stateful application", rate, "events/s",
               spread_note(runs) + ratio(ctx, rate) + f"; Python {sys.version_info.major}.{sys.version_info.minor}, "
               + ", ".join(peer_requirements()))
