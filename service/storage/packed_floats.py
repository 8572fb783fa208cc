"""Many rows of floats from PostgreSQL as one value: the server packs them into a bytea.

Why: a monitoring window of 50,000 clients has about 140,000 sessions of 9 numbers each.
Fetched as rows, the driver builds 1.3 million Python objects that the cell writer then
turns back into floats, and that was most of the window's time; COPY's binary format
avoids the objects but its driver sends one message per row, each a Python round
(bench/monitoring_service.py). Instead the query aggregates its rows into one bytea, each
row a 64-bit integer key (`int8send`: 8 bytes, big-endian) then its values (`float8send`:
8 bytes each, big-endian IEEE 754; PostgreSQL's documentation of binary I/O functions),
which numpy reads in one call. A NULL value becomes NaN first, so every row has the same
width. The rows come in no particular order unless the aggregate is given one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import BigInteger, ColumnElement, Double, LargeBinary, cast, func, literal_column
from sqlalchemy.dialects.postgresql import aggregate_order_by


def packed_rows(
    key: ColumnElement[Any],
    columns: Sequence[ColumnElement[Any]],
    order_by: ColumnElement[Any] | None = None,
) -> ColumnElement[bytes]:
    """An aggregate of the query's rows: each row's `key` as int8, then its `columns` as
    float8 (NULL: NaN), one row after the other in one bytea (NULL when there is no row),
    in no particular order, or in that of `order_by`."""
    row: ColumnElement[Any] = func.int8send(cast(key, BigInteger))
    for c in columns:
        value = func.coalesce(cast(c, Double), literal_column("'NaN'::float8"))
        row = row.op("||")(func.float8send(value))
    separator: ColumnElement[Any] = literal_column("''::bytea")
    if order_by is not None:
        separator = aggregate_order_by(separator, order_by)
    return func.string_agg(row, separator, type_=LargeBinary)


def unpack_rows(
    data: bytes | None, width: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """packed_rows' value as the rows' keys (n,) and their values (n, width)."""
    row = np.dtype([("key", ">i8"), ("values", ">f8", (width,))])
    if data is None:
        return np.zeros(0, dtype=np.int64), np.zeros((0, width))
    if len(data) % row.itemsize:
        raise ValueError(f"{len(data)} bytes are not rows of a key and {width} float8 values")
    rows = np.frombuffer(data, dtype=row)
    return rows["key"].astype(np.int64), rows["values"].astype(np.float64)
