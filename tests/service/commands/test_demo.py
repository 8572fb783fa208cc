"""`dropout-risk demo`: a simulated caseload with every risk level, stored like EHR data."""

from __future__ import annotations

import pytest

from service.storage import repository as repo
from tests.support.helpers import REPO, db_session
from training.cli import run


def test_demo_seeds_a_mixed_caseload_once(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["demo", "--clinic", "demo", "--clients", "12", "--database-url", database_url]
    args += ["--models-dir", str(REPO / "models")]
    assert run(args) == 0
    assert capsys.readouterr().out == (
        "seeded clinic demo: 12 simulated clients (4 high, 4 moderate, 4 low), "
        f"{_sessions(database_url)} sessions\n"
    )
    with db_session(database_url) as s:
        page = repo.caseload(s, "demo", None, None, None, 50, 0)
        rows, total = page.rows, page.total
        first_sessions = repo.get_sessions(s, "demo", rows[0].client_id)
        other = repo.caseload(s, "clinic-b", None, None, None, 50, 0).rows
    assert total == 12
    assert [r.risk_level for r in rows] == ["high"] * 4 + ["moderate"] * 4 + ["low"] * 4
    assert rows[0].probability == max(r.probability for r in rows)
    assert 1 <= len(first_sessions) <= 3  # early phase only
    assert other == []
    assert run(args) == 0  # a second run leaves the clinic as it is
    assert capsys.readouterr().out == "clinic demo already has clients; nothing seeded\n"


def _sessions(database_url: str) -> int:
    with db_session(database_url) as s:
        rows = repo.caseload(s, "demo", None, None, None, 50, 0).rows
        return sum(len(repo.get_sessions(s, "demo", r.client_id)) for r in rows)


def test_demo_refuses_a_bad_clinic(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["demo", "--clinic", "a b"]) == 2
    assert "--clinic: value 'a b'" in capsys.readouterr().err
