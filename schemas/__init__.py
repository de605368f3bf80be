"""The wire format: Avro schemas (the `.avsc` files here), the codec and the field rules."""

from schemas.codec import (
    CATALOG,
    INPUT_RECORDS,
    OUTPUT_RECORDS,
    RECORD_NAMES,
    Codec,
    DecodeError,
    SchemaCatalog,
)
from schemas.validation import FieldRuleViolation, validate

__all__ = [
    "CATALOG",
    "INPUT_RECORDS",
    "OUTPUT_RECORDS",
    "RECORD_NAMES",
    "Codec",
    "DecodeError",
    "FieldRuleViolation",
    "SchemaCatalog",
    "validate",
]
