"""service.storage.packed_floats: the float rows PostgreSQL packs into one bytea, read back
as an array (the round trip through a real server is in
tests/service/scoring/test_monitoring_window.py, on PostgreSQL)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from sqlalchemy import column
from sqlalchemy.dialects import postgresql

from service.storage.packed_floats import packed_rows, unpack_rows


def test_rows_of_big_endian_float8_values_come_back_as_an_array() -> None:
    values = [0.0, 1.5, float("nan"), -2.25, 20454.0, 1e300]
    data = b"".join(struct.pack(">d", v) for v in values)
    got = unpack_rows(data, 3)
    assert got.dtype == np.float64
    assert got.shape == (2, 3)
    assert np.array_equal(got, np.array(values).reshape(2, 3), equal_nan=True)


def test_no_rows_is_an_empty_table_of_the_width() -> None:
    assert unpack_rows(None, 9).shape == (0, 9)


def test_bytes_that_are_not_whole_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="20 bytes are not rows of 2 float8 values"):
        unpack_rows(b"\x00" * 20, 2)


def test_the_aggregate_packs_each_column_as_a_non_null_float8() -> None:
    sql = str(packed_rows([column("a"), column("b")]).compile(dialect=postgresql.dialect()))
    assert sql == (
        "string_agg(float8send(coalesce(CAST(a AS DOUBLE PRECISION), 'NaN'::float8)) "
        "|| float8send(coalesce(CAST(b AS DOUBLE PRECISION), 'NaN'::float8)), ''::bytea)"
    )
