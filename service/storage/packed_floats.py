"""Many rows of floats from PostgreSQL as one value: the server packs them into a bytea.

Why: a monitoring window of 50,000 clients has about 140,000 sessions of 9 numbers each.
Fetched as rows, the driver builds 1.3 million Python objects that the cell writer then
turns back into floats, and that was most of the window's time; COPY's binary format
avoids the objects but its driver sends one message per row, each a Python round
(bench/monitoring_service.py). Instead the query aggregates its rows into one bytea,
each value as `float8send` writes it (8 bytes, big-endian, IEEE 754: PostgreSQL's
documentation of binary I/O functions), which numpy reads in one call. A NULL becomes NaN
first, so every row has the same width. The rows come in no particular order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, Double, LargeBinary, cast, func, literal_column

_BIG_ENDIAN_FLOAT8 = np.dtype(">f8")


def packed_rows(columns: Sequence[ColumnElement[Any]]) -> ColumnElement[bytes]:
    """An aggregate of the query's rows: each row's `columns`, as float8 (NULL: NaN), one
    after the other in one bytea (NULL when there is no row)."""
    fields = [
        func.float8send(func.coalesce(cast(c, Double), literal_column("'NaN'::float8")))
        for c in columns
    ]
    row: ColumnElement[Any] = fields[0]
    for field in fields[1:]:
        row = row.op("||")(field)
    return func.string_agg(row, literal_column("''::bytea"), type_=LargeBinary)


def unpack_rows(data: bytes | None, width: int) -> npt.NDArray[np.float64]:
    """packed_rows' value as an (n, width) float64 array."""
    if data is None:
        return np.zeros((0, width))
    if len(data) % (width * _BIG_ENDIAN_FLOAT8.itemsize):
        raise ValueError(f"{len(data)} bytes are not rows of {width} float8 values")
    values = np.frombuffer(data, dtype=_BIG_ENDIAN_FLOAT8).astype(np.float64)
    return values.reshape(-1, width)
