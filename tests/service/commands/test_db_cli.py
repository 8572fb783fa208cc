"""`dropout-risk db upgrade`, and the storage commands' help and input errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from service.storage.engine import make_engine
from training.cli import run


def test_db_upgrade_creates_every_table_and_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'service.db'}"
    for _ in range(2):
        assert run(["db", "upgrade", "--database-url", url]) == 0
        assert capsys.readouterr().out == "database is at the latest migration\n"
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert tables >= {
        "clinics",
        "api_keys",
        "clients",
        "sessions",
        "outcomes",
        "predictions",
        "flag_acks",
        "audit_log",
        "cds_jti",
        "alembic_version",
    }


def test_unreachable_database_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
    assert run(["db", "upgrade", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the database cannot be reached")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["export", "--clinic", "a b", "--out", "x"], "--clinic: value 'a b'"),
        (["audit", "--clinic", "c", "--since", "yesterday"], "--since: value 'yesterday'"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    assert run([*args, "--database-url", url]) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("command", [["db", "upgrade"], ["export"], ["audit"]], ids=str)
def test_help_names_the_database_option(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([*command, "--help"]) == 0
    assert "--database-url" in capsys.readouterr().out
