"""Bad records go to the dead-letter topic with their reason; every valid one is processed."""

from __future__ import annotations

import os
import time
import urllib.request

import pytest

from schemas.codec import Codec
from streams.contract import topics as T
from tests.support.kafka import consume_until, producer

pytestmark = pytest.mark.integration
codec = Codec()
NOW = int(time.time() * 1000)


def order(i: int, seller: str = "s-valid") -> dict:
    return dict(event_id=f"ev-{i}", order_id=f"o-{i}", seller_id=seller, buyer_id=f"b-{i}", show_id=None,
                amount_cents=100, currency="USD", placed_at=NOW - 3_600_000 + i, ship_by=None,
                quantity=1, listing_id=None)


def rating(**over: object) -> dict:
    r = dict(event_id="ev-r", rating_id="r", order_id="o-1", seller_id="s-valid", buyer_id="b",
             stars=5, show_id=None, rated_at=NOW - 1000)
    r.update(over)
    return r


def test_bad_records_are_dead_lettered_and_valid_ones_processed(worker_factory: type) -> None:
    w = worker_factory.start()
    orders, ratings = w.topic("marketplace.orders"), w.topic("marketplace.ratings")
    good = codec.encode("OrderCancelled", dict(event_id="e", order_id="o", seller_id="s", initiated_by="SELLER",
                                               reason="r", cancelled_at=NOW))
    enum_pos = 10 + len(b"\x02e\x02o\x02s")
    unknown_enum = good[:enum_pos] + b"\x7e" + good[enum_pos + 1:]
    truncated = codec.encode("RatingSubmitted", rating())[:-4]
    unknown_fp = b"\xc3\x01" + b"\x11" * 8 + b"\x00"
    bad = [  # (topic, key, value, expected reason)
        (ratings, b"k-random", os.urandom(1) and b"\x42\x17\x99\x01\x02", "bad_framing"),
        (ratings, b"k-trunc", truncated, "truncated"),
        (ratings, b"k-stars", codec.encode("RatingSubmitted", rating(stars=9)), "stars_out_of_range"),
        (ratings, b"k-seller", codec.encode("RatingSubmitted", rating(seller_id="")), "missing_seller_id"),
        (w.topic("marketplace.cancellations"), b"k-enum", unknown_enum, "unknown_enum_symbol"),
        (ratings, b"k-future", codec.encode("RatingSubmitted", rating(rated_at=NOW + 10 * 365 * 86_400_000)),
         "timestamp_in_future"),
        (orders, b"k-fp", unknown_fp, "unknown_schema"),
        (orders, b"k-type", codec.encode("RatingSubmitted", rating()), "wrong_record_type"),
    ]
    p = producer(w.env["KAFKA_BOOTSTRAP_SERVERS"])
    for i, (topic, key, value, _) in enumerate(bad):
        p.produce(orders, key=b"s-valid", value=codec.encode("OrderPlaced", order(i)))
        p.produce(topic, key=key, value=value)
    p.produce(orders, value=codec.encode("OrderPlaced", order(100)))  # unkeyed: re-keyed, still counted
    p.produce(orders, key=b"wrong-key", value=codec.encode("OrderPlaced", order(101)))
    p.flush()
    expected_orders = len(bad) + 2

    dead = consume_until(w.env["KAFKA_BOOTSTRAP_SERVERS"], w.topic(T.DEAD_LETTER),
                         lambda ms: len(ms) >= len(bad))
    by_key = {m.key(): m for m in dead}
    assert len(dead) == len(bad)
    for topic, key, value, reason in bad:
        m = by_key[key]
        headers = dict(m.headers())
        assert m.value() == value, reason  # the original bytes, unchanged
        assert headers[T.H_ERROR].decode().startswith(reason + ":"), headers[T.H_ERROR]
        assert headers[T.H_TOPIC].decode() == topic
        assert int(headers[T.H_PARTITION]) >= 0
        assert int(headers[T.H_OFFSET]) >= 0

    def all_counted(ms: list) -> bool:
        if not ms:
            return False
        _, rec = codec.decode(ms[-1].value())
        return rec["cancellation_rate"]["denominator"] == expected_orders

    metrics = consume_until(w.env["KAFKA_BOOTSTRAP_SERVERS"], w.topic(T.SELLER_METRICS), all_counted)
    assert metrics[-1].key() == b"s-valid"

    text = urllib.request.urlopen(f"http://127.0.0.1:{w.port}/metrics").read().decode()
    for _, _, _, reason in bad:
        assert f'reason="{reason}"' in text, reason
    assert 'warden_events_total{topic="marketplace.orders"}' in text
