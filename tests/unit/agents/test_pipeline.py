"""The pipeline in process, no broker: bytes in, outgoing records and dead-letter reasons out."""

from __future__ import annotations

import time
from pathlib import Path

from agents.pipeline import Pipeline, partition_for
from rules.policy import load_policy
from schemas.codec import Codec
from streams.contract import topics as T
from tables.engine import Engine

POLICY = load_policy(str(Path(__file__).resolve().parents[3] / "rules" / "policy.yaml"))
NOW = int(time.time() * 1000)
codec = Codec()
PARTITIONS = 4


def pipeline() -> Pipeline:
    engine = Engine(POLICY, clock="event", partition_of=lambda s: partition_for(s.encode(), PARTITIONS))
    return Pipeline(engine, codec, PARTITIONS, "p.")


def order(seller: str, i: int) -> bytes:
    return codec.encode("OrderPlaced", dict(
        event_id=f"e{i}", order_id=f"o{i}", seller_id=seller, buyer_id=f"b{i}", show_id=None, amount_cents=100,
        currency="USD", placed_at=NOW - 60_000 + i, ship_by=None, quantity=1, listing_id=None))


def test_a_keyed_order_updates_the_figures_and_publishes_them() -> None:
    p = pipeline()
    seller = "seller-a"
    part = partition_for(seller.encode(), PARTITIONS)
    out = p.handle("p.marketplace.orders", part, 0, seller.encode(), order(seller, 1), None, NOW / 1000)
    assert out.record_name == "OrderPlaced" and out.seller_id == seller and out.dead_letter_reason is None
    (metrics,) = [o for o in out.outputs if o.topic == T.SELLER_METRICS]
    _, record = codec.decode(metrics.value)
    assert record["seller_id"] == seller and record["cancellation_rate"]["denominator"] == 1
    assert seller in out.views


def test_bad_bytes_go_to_the_dead_letter_topic_with_the_reason_and_the_source() -> None:
    p = pipeline()
    for value, reason in [(b"\x42\x17\x99", "bad_framing"), (order("s", 2)[:-3], "truncated"),
                          (b"\xc3\x01" + b"\x11" * 8 + b"\x00", "unknown_schema")]:
        out = p.handle("p.marketplace.orders", 1, 7, b"s", value, None, NOW / 1000)
        (dead,) = out.outputs
        headers = dict(dead.headers)
        assert out.dead_letter_reason == reason and dead.topic == T.DEAD_LETTER
        assert dead.value == value and dead.key == b"s"
        assert headers[T.H_ERROR].decode().startswith(reason + ":")
        assert (headers[T.H_TOPIC], headers[T.H_PARTITION], headers[T.H_OFFSET]) == (
            b"p.marketplace.orders", b"1", b"7")


def test_a_record_on_the_wrong_topic_is_dead_lettered() -> None:
    out = pipeline().handle("p.marketplace.ratings", 0, 0, b"s", order("s", 3), None, NOW / 1000)
    assert out.dead_letter_reason == "wrong_record_type"


def test_a_mis_keyed_record_is_moved_to_its_sellers_partition_not_applied() -> None:
    seller = "seller-b"
    target = partition_for(seller.encode(), PARTITIONS)
    wrong = (target + 1) % PARTITIONS
    out = pipeline().handle("p.marketplace.orders", wrong, 5, None, order(seller, 4), None, NOW / 1000)
    (moved,) = out.outputs
    assert moved.topic == T.REKEYED and moved.partition == target and moved.key == seller.encode()
    assert dict(moved.headers)[T.H_OFFSET] == b"5"
    assert not out.views  # applied only where its seller's state is
