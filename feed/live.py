"""The live feed of `make run`: what the worker consumes, and what it decides."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from typing import Any

from confluent_kafka import Consumer

from schemas.codec import Codec
from streams.contract import topics as T
from streams.contract.settings import Settings


def _scrape(port: int) -> dict[str, float]:
    """Sum the worker's Prometheus counters by name (and topic for events)."""
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            text = resp.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{", 1)[0]
        try:
            out[base] = out.get(base, 0.0) + float(value)
        except ValueError:
            continue
    return out


def _rate_column(rate: Any) -> str:
    """A rate in the feed's fixed-width column (None: not measured)."""
    return "  n/a" if rate is None else f"{rate * 100:5.1f}%"


def live_feed(servers: str, settings: Settings, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    codec = Codec(settings.schema_registry_url)
    consumer = Consumer({"bootstrap.servers": servers, "group.id": f"warden-feed-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
    wanted = [settings.topic(t) for t in (T.SELLER_METRICS, T.ENFORCEMENTS, T.NOTIFICATIONS, T.DEAD_LETTER)]
    consumer.subscribe(wanted)
    standings: dict[tuple[str, str], str] = {}
    last_summary = 0.0
    try:
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None and name != "simulator":
                    print(f"the {name} exited (code {proc.returncode}); see .warden/{name}.log")
                    return
            msg = consumer.poll(0.5)
            now = time.monotonic()
            if now - last_summary >= 5:
                last_summary = now
                m = _scrape(settings.web_port)
                print(f"{time.strftime('%H:%M:%S')} consumed {m.get('warden_events_total', 0):>9,.0f} events | "
                      f"dead-lettered {m.get('warden_events_invalid_total', 0):,.0f} | "
                      f"metrics published {m.get('warden_seller_metrics_published_total', 0):,.0f} | "
                      f"actions {m.get('warden_enforcements_total', 0):,.0f} | "
                      f"dashboard {settings.ui_url} (sign-in links above)")
            if msg is None or msg.error():
                continue
            topic = msg.topic()
            if topic == settings.topic(T.DEAD_LETTER):
                error = dict(msg.headers() or []).get(T.H_ERROR)
                reason = error.decode() if isinstance(error, bytes) else "?"
                print(f"{time.strftime('%H:%M:%S')} DEAD-LETTER {reason}")
                continue
            try:
                name, record = codec.decode(msg.value())
            except Exception as exc:  # the feed is a viewer: never stop on a bad record
                print(f"undecodable output on {topic}: {exc}")
                continue
            if name == "SellerMetrics":
                for metric in ("cancellation_rate", "late_dropoff_rate", "unfulfilled_rate",
                               "flawed_item_rate", "low_rating_rate"):
                    fig = record[metric]
                    key = (record["seller_id"], metric)
                    if standings.get(key) != fig["standing"] and fig["standing"] != "INSUFFICIENT_DATA":
                        if key in standings or fig["standing"] == "BELOW":
                            print(f"{time.strftime('%H:%M:%S')} {record['seller_id']:<32} {metric:<18} "
                                  f"{fig['numerator']:>4}/{fig['denominator']:<5} {_rate_column(fig['rate'])} "
                                  f"{standings.get(key, '-')} -> {fig['standing']}")
                        standings[key] = fig["standing"]
            elif name == "EnforcementAction":
                print(f"{time.strftime('%H:%M:%S')} ACTION {record['action']} {record['status']} "
                      f"{record['seller_id']} {record['metric']} {_rate_column(record['observed_rate'])}: "
                      f"{record['reason']}")
            elif name == "Notification":
                print(f"{time.strftime('%H:%M:%S')} NOTIFY {record['seller_id']} {record['template']}: "
                      f"{json.dumps(record['subject'])}")
    finally:
        consumer.close()
