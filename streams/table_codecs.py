"""Faust codecs for the table values (tables/: compact JSON arrays, not pickles)."""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from rules.history import History
from tables.orders import OrderState
from tables.sellers import SellerState


class Utf8(codecs.Codec):
    """Table keys are str; stored as UTF-8 so they read back as the same str."""

    def _dumps(self, obj: Any) -> bytes:
        return obj.encode() if isinstance(obj, str) else bytes(obj)

    def _loads(self, s: bytes) -> Any:
        return s.decode()


class OrderCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return obj.dumps()  # type: ignore[no-any-return]

    def _loads(self, s: bytes) -> Any:
        return OrderState.loads(s)


class SellerCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return obj.dumps()  # type: ignore[no-any-return]

    def _loads(self, s: bytes) -> Any:
        return SellerState.loads(s)


class HistoryCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return obj.dumps()  # type: ignore[no-any-return]

    def _loads(self, s: bytes) -> Any:
        return History.loads(s)


def register_codecs() -> None:
    codecs.register("utf8", Utf8())
    codecs.register("warden-order", OrderCodec())
    codecs.register("warden-seller", SellerCodec())
    codecs.register("warden-history", HistoryCodec())
