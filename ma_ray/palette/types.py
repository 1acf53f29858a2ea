"""The value types of features, request fields and DSL expressions, and their Arrow equivalents."""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa


class FeatureType(StrEnum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRING = "string"
    TIMESTAMP = "timestamp"  # UTC, microseconds

    @property
    def arrow(self) -> pa.DataType:
        return _ARROW[self]

    @property
    def is_numeric(self) -> bool:
        return self in (FeatureType.INT, FeatureType.FLOAT)


_ARROW: dict[FeatureType, pa.DataType] = {
    FeatureType.INT: pa.int64(),
    FeatureType.FLOAT: pa.float64(),
    FeatureType.BOOL: pa.bool_(),
    FeatureType.STRING: pa.string(),
    FeatureType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
}
