"""The vocabulary (ids, dates, instrument ranges, items, risk levels, landmarks): one
definition, read by every door."""

from __future__ import annotations

import ast
import datetime as dt
import itertools
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


def _literal(node: ast.AST) -> object:
    """The value of a literal tuple, list or constant; None for anything else."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _written(values: set[object]) -> dict[Path, list[object]]:
    """Where any of `values` is written in the source tree: as a tuple or list literal (a
    `Literal[...]` of several values is one), as the literal bounds of a `Field(ge=, le=)`
    or a `Column(low=, high=)`, or as two literal positional bounds side by side in a
    call."""
    found: dict[Path, list[object]] = {}
    for path in _SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            hits: list[object] = []
            if isinstance(node, ast.Tuple | ast.List):
                value = _literal(node)
                hits.append(tuple(value) if isinstance(value, list | tuple) else None)
            elif isinstance(node, ast.Call):
                kw = {k.arg: _literal(k.value) for k in node.keywords}
                hits += [(kw.get("ge"), kw.get("le")), (kw.get("low"), kw.get("high"))]
                args = [_literal(a) for a in node.args]
                hits += list(itertools.pairwise(args))
            hits = [h for h in hits if isinstance(h, tuple) and _hashable(h) and h in values]
            if hits:
                found.setdefault(path.relative_to(REPO), []).extend(hits)
    return found


def test_ranges_items_and_levels_are_written_once_in_the_source_tree() -> None:
    """The instrument ranges, the WAI-SR item map, the SRS items and the risk levels are
    written in training/vocabulary.py only: the contract, the API schemas, FHIR, CDS,
    storage and the pages read them from there. (The two 0-40 totals, SRS and ORS, are
    each written there once, hence two hits of (0, 40).)"""
    ranges = {
        vocabulary.WAI_ITEM_RANGE,
        vocabulary.SRS_TOTAL_RANGE,
        vocabulary.SRS_ITEM_RANGE,
        vocabulary.ORS_TOTAL_RANGE,
        vocabulary.PHQ9_TOTAL_RANGE,
        vocabulary.AGE_RANGE,
    }
    items = {*vocabulary.WAI_SR_ITEMS.values(), vocabulary.SRS_ITEMS}
    levels = {vocabulary.RISK_LEVELS}
    found = _written(ranges | items | levels)
    assert list(found) == [Path("training/vocabulary.py")], found
    assert sorted(map(str, found[Path("training/vocabulary.py")])) == sorted(
        map(str, [*ranges, vocabulary.ORS_TOTAL_RANGE, *items, *levels])
    )
    # The most-urgent-first order and the flagging levels are derived from the levels,
    # never written out again.
    assert vocabulary.FLAG_LEVELS == ("moderate", "high")
    assert _written({vocabulary.URGENT_FIRST, vocabulary.FLAG_LEVELS}) == {}


def test_the_roll_ups_follow_the_item_map() -> None:
    """Each WAI-SR subscale is the mean of its own four items (every item in exactly one),
    and the SRS total needs all four items."""
    numbers = sorted(n for group in vocabulary.WAI_SR_ITEMS.values() for n in group)
    assert numbers == list(range(1, vocabulary.WAI_SR_ITEM_COUNT + 1))
    answers = [0] * vocabulary.WAI_SR_ITEM_COUNT
    for value, name in enumerate(vocabulary.WAI_SUBSCALES, start=1):
        for n in vocabulary.WAI_SR_ITEMS[name]:
            answers[n - 1] = value
    assert vocabulary.wai_subscale_means(answers) == (1.0, 2.0, 3.0)
    assert vocabulary.srs_items_total([9.0, 8.5, 9.0, 9.5]) == 36.0
    assert vocabulary.srs_items_total([9.0, None, 9.0, 9.5]) is None


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


def test_a_models_cut_offs_have_one_type_in_the_source_tree() -> None:
    """The two cut-offs (moderate, high) are one class, training.vocabulary.Thresholds:
    evaluation, publishing, the Prediction and the API schema use it, and no other class
    declares just those two fields (the metadata file's validated copy,
    training.artifact_schema.Thresholds, also has the rule and the validation design)."""
    declaring = [
        (path.relative_to(REPO), node.name)
        for path in _SOURCES
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
        and {
            item.target.id
            for item in node.body
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
        }
        == {"moderate", "high"}
    ]
    assert declaring == [(Path("training/vocabulary.py"), "Thresholds")]


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
