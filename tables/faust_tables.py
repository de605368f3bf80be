"""The Faust tables holding the core's state live, each with a changelog topic."""

from __future__ import annotations

from typing import Any

from tables.codecs import register_codecs
from tables.engine import Stores


def declare_tables(app: Any, partitions: int) -> Stores:
    """Declare Warden's tables on `app`, co-partitioned with the input topics."""
    register_codecs()

    def table(name: str, codec: str) -> Any:
        t = app.Table(name, partitions=partitions, key_type=str)
        # Faust derives changelog serializers from types; ours are codecs. The store is
        # made lazily and reads them then; the changelog topic was made when the table
        # registered (with JSON), so make it again: recovery decodes with its schema.
        t.key_serializer = "utf8"
        t.value_serializer = codec
        t.changelog_topic = t._new_changelog_topic()
        return t

    return Stores(
        orders=table("orders", "warden-order"),
        sellers=table("sellers", "warden-seller"),
        defect_buyers=table("defect-buyers", "json"),
        evidence=table("evidence", "json"),
        clocks=table("clocks", "json"),
        enforcement=table("enforcement", "warden-history"),
    )
