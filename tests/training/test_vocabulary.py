"""The vocabulary of ids and dates: one definition, read by every door."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from tests.support.helpers import REPO
from training import vocabulary
from training.vocabulary import (
    ID_PATTERN,
    date_window,
    in_date_window,
    is_id,
    latest_date,
    outside_date_window,
)

_SOURCES = [p for d in ("service", "training", "bench") for p in (REPO / d).rglob("*.py")]


def _count(text: str) -> dict[Path, int]:
    found = {p: p.read_text(encoding="utf-8").count(text) for p in _SOURCES}
    return {p.relative_to(REPO): n for p, n in found.items() if n}


def test_the_id_pattern_is_written_once_in_the_source_tree() -> None:
    """Every door reads the id rule from training/vocabulary.py: neither the pattern nor
    either of the two variants it replaced (no `_` in fhir.py, no length cap in cds.py) is
    written anywhere else."""
    vocabulary_py = Path("training/vocabulary.py")
    assert _count(vocabulary.ID_REGEX) == {vocabulary_py: 1}
    for old in ("[A-Za-z0-9._-]", r"[A-Za-z0-9\-.]", "A-Z a-z 0-9 . _ -"):
        assert _count(old) == {}, old
    assert _count("ID_PATTERN =") == {vocabulary_py: 1}
    assert _count("ID_RULE =") == {vocabulary_py: 1}


@pytest.mark.parametrize(
    "text", ["A-1001", "a", "T.7", "x_y-z", ".a", "a.", "..a..", "_", "-", "x" * 64]
)
def test_valid_ids(text: str) -> None:
    assert is_id(text)
    assert re.fullmatch(ID_PATTERN[1:-1], text)


@pytest.mark.parametrize(
    "text", ["", ".", "..", "...", "x" * 65, "a b", "a/b", "é", "a\n", "\u2009", "a:b"]
)
def test_invalid_ids(text: str) -> None:
    assert not is_id(text)


def test_the_date_window_runs_from_1990_to_one_day_after_today_utc() -> None:
    today = dt.datetime.now(dt.UTC).date()
    assert latest_date() == today + dt.timedelta(days=1)
    assert in_date_window(dt.date(1990, 1, 1))
    assert in_date_window(today + dt.timedelta(days=1))
    assert not in_date_window(dt.date(1989, 12, 31))
    assert not in_date_window(today + dt.timedelta(days=2))
    assert not in_date_window(dt.date(1, 1, 1))
    assert not in_date_window(dt.date(9999, 12, 31))
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    assert date_window() == f"from 1990-01-01 to {tomorrow} (today + 1, UTC)"
    assert outside_date_window(dt.date(1, 1, 1)) == (
        f"0001-01-01 is outside the plausible dates, from 1990-01-01 to {tomorrow} (today + 1, UTC)"
    )
