"""service.storage.packed_floats: the keyed float rows PostgreSQL packs into one bytea, read
back as arrays (the round trip through a real server is in
tests/service/scoring/test_monitoring_window.py, on PostgreSQL)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from sqlalchemy import column
from sqlalchemy.dialects import postgresql

from service.storage.packed_floats import packed_rows, unpack_rows


def test_rows_of_a_big_endian_int8_key_and_float8_values_come_back_as_arrays() -> None:
    rows = [(-(2**63), [0.0, 1.5, float("nan")]), (2**63 - 1, [-2.25, 20454.0, 1e300])]
    data = b"".join(struct.pack(">q3d", key, *values) for key, values in rows)
    keys, values = unpack_rows(data, 3)
    assert (keys.dtype, values.dtype) == (np.int64, np.float64)
    assert keys.tolist() == [-(2**63), 2**63 - 1]
    assert values.shape == (2, 3)
    assert np.array_equal(values, np.array([v for _, v in rows]), equal_nan=True)


def test_no_rows_is_no_key_and_an_empty_table_of_the_width() -> None:
    keys, values = unpack_rows(None, 8)
    assert (keys.shape, values.shape) == ((0,), (0, 8))


def test_bytes_that_are_not_whole_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="20 bytes are not rows of a key and 2 float8 values"):
        unpack_rows(b"\x00" * 20, 2)


def test_the_aggregate_packs_the_key_as_int8_and_each_column_as_a_non_null_float8() -> None:
    packed = packed_rows(column("k"), [column("a"), column("b")])
    sql = str(packed.compile(dialect=postgresql.dialect()))
    assert sql == (
        "string_agg((int8send(CAST(k AS BIGINT)) "
        "|| float8send(coalesce(CAST(a AS DOUBLE PRECISION), 'NaN'::float8))) "
        "|| float8send(coalesce(CAST(b AS DOUBLE PRECISION), 'NaN'::float8)), ''::bytea)"
    )
