"""The cohort contract: every violation kind stops with exit 2 and names file, line,
column, value and rule; valid files pass; nothing is coerced."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.helpers import write_csv
from training.cli import run
from training.contract import (
    MAX_REPORTED,
    CsvSource,
    Problems,
    iter_session_chunks,
    load_cohort,
    read_client_lookup,
)
from training.errors import ContractError
from training.vocabulary import ID_RULE, date_window, latest_date

CLIENTS = "client_id,therapist_id,age,gender,dropout\nA-1,T1,30,female,1\nB.2,T1,41,male,0\n"
SESSIONS = (
    "client_id,session_number,session_date,wai_goal,wai_task,wai_bond,srs_total,ors_total,"
    "phq9_total\n"
    "A-1,1,2026-01-05,3.25,3.5,4,35.5,18.2,14\n"
    "A-1,2,2026-01-12,3,3,3.5,33,19,13\n"
    "B.2,1,2026-01-06,4,4,4.25,38,20,\n"
)


def _run_validate(
    tmp_path: Path, sessions: str, clients: str = CLIENTS, labels: bool = False
) -> tuple[int, str]:
    s = write_csv(tmp_path / "sessions.csv", sessions)
    c = write_csv(tmp_path / "clients.csv", clients)
    args = ["validate", "--sessions", str(s), "--clients", str(c)]
    return run([*args, "--labels"] if labels else args), ""


def _errors(
    tmp_path: Path, sessions: str, clients: str = CLIENTS, need_labels: bool = False
) -> ContractError:
    s = write_csv(tmp_path / "sessions.csv", sessions)
    c = write_csv(tmp_path / "clients.csv", clients)
    with pytest.raises(ContractError) as info:
        load_cohort(s, c, need_labels=need_labels, warnings=[])
    return info.value


def test_valid_files_pass_and_keep_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = _run_validate(tmp_path, SESSIONS, labels=True)
    assert status == 0
    assert "2 clients, 3 sessions" in capsys.readouterr().out
    cohort = load_cohort(tmp_path / "sessions.csv", tmp_path / "clients.csv", True, [])
    assert cohort.sessions["wai_goal"].tolist() == [3.25, 3.0, 4.0]
    assert cohort.sessions["phq9_total"].isna().tolist() == [False, False, True]
    assert cohort.clients["dropout"].tolist() == [1.0, 0.0]


def test_out_of_range_value_names_line_column_value_and_rule(tmp_path: Path) -> None:
    bad = SESSIONS.replace("3.25,3.5,4,35.5", "7.2,3.5,4,35.5")
    error = _errors(tmp_path, bad)
    assert error.total == 1
    assert error.problems == [
        "sessions.csv:2: column wai_goal: value 7.2 is not a number from 1 to 5"
    ]


def test_non_numeric_value_is_reported_verbatim(tmp_path: Path) -> None:
    error = _errors(tmp_path, SESSIONS.replace(",33,19,", ",high,19,"))
    assert error.problems == [
        "sessions.csv:3: column srs_total: value 'high' is not a number from 0 to 40"
    ]


@pytest.mark.parametrize("token", ["nan", "inf", "-Infinity", "NA"])
def test_nan_inf_and_na_text_are_not_taken_as_missing(tmp_path: Path, token: str) -> None:
    error = _errors(tmp_path, SESSIONS.replace(",18.2,", f",{token},"))
    assert error.problems == [
        f"sessions.csv:2: column ors_total: value '{token}' is not a number from 0 to 40"
    ]


def test_non_integer_where_integer_required(tmp_path: Path) -> None:
    error = _errors(tmp_path, SESSIONS.replace("A-1,2,", "A-1,2.5,"))
    rule = "is not an integer from 1 to 1000 (required)"
    assert f"sessions.csv:3: column session_number: value 2.5 {rule}" in error.problems


def test_unknown_client_duplicate_session_and_bad_id(tmp_path: Path) -> None:
    bad = SESSIONS + "Z9,1,,,,,36,,\nA-1,2,,,,,36,,\nbad id!,1,,,,,36,,\n"
    error = _errors(tmp_path, bad)
    text = "\n".join(error.problems)
    assert (
        "sessions.csv:5: column client_id: value 'Z9' is not a client_id listed in "
        "clients.csv" in text
    )
    assert (
        "sessions.csv:6: column session_number: value 'A-1, 2' is a duplicate "
        "(session_number per client must be unique)" in text
    )
    assert (
        "sessions.csv:7: column client_id: value 'bad id!' is not 1-64 characters of "
        "A-Za-z0-9._-" in text
    )


def test_duplicate_client_and_bad_age_and_label(tmp_path: Path) -> None:
    clients = CLIENTS + "A-1,T2,130,female,maybe\n"
    error = _errors(tmp_path, SESSIONS, clients)
    assert error.problems == [
        "clients.csv:4: column age: value 130 is not an integer from 12 to 100",
        "clients.csv:4: column dropout: value 'maybe' is not 0/1 or true/false",
        "clients.csv:4: column client_id: value 'A-1' is a duplicate (client_id must be unique)",
    ]


def test_true_false_labels_accepted_and_missing_label_rejected_for_training(tmp_path: Path) -> None:
    clients = "client_id,dropout\nA-1,true\nB.2,\n"
    cohort = load_cohort(
        write_csv(tmp_path / "s.csv", SESSIONS),
        write_csv(tmp_path / "c.csv", clients),
        need_labels=False,
        warnings=[],
    )
    assert cohort.clients["dropout"].tolist()[0] == 1.0
    error = _errors(tmp_path, SESSIONS, clients, need_labels=True)
    assert error.problems == [
        "clients.csv:3: column dropout: value '' is not present "
        "(0/1 or true/false; training needs every label)"
    ]


def test_missing_required_column_and_empty_file(tmp_path: Path) -> None:
    error = _errors(tmp_path, "client_id,wai_goal\nA-1,3\n")
    assert error.problems[0].startswith("sessions.csv: required column 'session_number' is missing")
    error = _errors(tmp_path, "")
    assert error.problems == [
        "sessions.csv: the file is empty (expected a header line and data rows)"
    ]
    error = _errors(tmp_path, "client_id,session_number\n")
    assert error.problems == ["sessions.csv: the file has a header but no data rows"]


def test_missing_label_column_when_training(tmp_path: Path) -> None:
    error = _errors(tmp_path, SESSIONS, "client_id,age\nA-1,30\nB.2,40\n", need_labels=True)
    assert error.problems[0].startswith("clients.csv: column 'dropout' is missing")


def test_unknown_columns_warn_once(tmp_path: Path) -> None:
    warnings: list[str] = []
    s = write_csv(
        tmp_path / "s.csv",
        SESSIONS.replace("phq9_total\n", "phq9_total,note\n", 1).replace(",14\n", ",14,x\n"),
    )
    load_cohort(s, write_csv(tmp_path / "c.csv", CLIENTS), False, warnings)
    assert warnings == ["warning: s.csv: ignoring unknown column(s): note"]


@pytest.mark.parametrize(
    ("header", "meant"),
    [("wai_goals", "wai_goal"), ("WAI_Task", "wai_task"), ("srs_totl", "srs_total")],
)
def test_a_misspelt_contract_column_exits_2_naming_the_column_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str, meant: str
) -> None:
    """Its values would silently be ignored: `validate` stops, naming both names."""
    status, _ = _run_validate(tmp_path, SESSIONS.replace(meant, header, 1))
    err = capsys.readouterr().err
    assert status == 2
    assert (
        f"sessions.csv: column '{header}' is not a contract column; did you mean `{meant}`?" in err
    )
    assert "ignoring unknown column" not in err


def test_a_truly_unknown_column_still_only_warns(tmp_path: Path) -> None:
    """`sex` is two edits from `age`: too far for a name that short, so not a misspelling."""
    warnings: list[str] = []
    clients = CLIENTS.replace("gender,", "gender,sex,", 1).replace("female,", "female,f,")
    clients = clients.replace("male,0", "male,m,0")
    cohort = load_cohort(
        write_csv(tmp_path / "s.csv", SESSIONS),
        write_csv(tmp_path / "c.csv", clients),
        True,
        warnings,
    )
    assert warnings == ["warning: c.csv: ignoring unknown column(s): sex"]
    assert len(cohort.clients) == 2


def test_measure_columns_may_be_absent(tmp_path: Path) -> None:
    only_srs = "client_id,session_number,srs_total\nA-1,1,36\nB.2,1,39.5\n"
    cohort = load_cohort(
        write_csv(tmp_path / "s.csv", only_srs), write_csv(tmp_path / "c.csv", CLIENTS), True, []
    )
    assert list(cohort.sessions.columns) == ["client_id", "session_number", "srs_total"]


def test_first_twenty_problems_then_count(tmp_path: Path) -> None:
    rows = "".join(f"A-1,{i},,9,,,,,\n" for i in range(1, 31))
    error = _errors(
        tmp_path,
        "client_id,session_number,session_date,wai_goal,wai_task,"
        "wai_bond,srs_total,ors_total,phq9_total\n" + rows,
    )
    assert error.total == 30
    assert len(error.problems) == MAX_REPORTED
    assert str(error).endswith("... and 10 more problem(s)")


def test_cli_exit_status_2_with_message_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = _run_validate(tmp_path, SESSIONS.replace(",35.5,", ",41,"))
    captured = capsys.readouterr()
    assert status == 2
    assert "sessions.csv:2: column srs_total: value 41 is not a number from 0 to 40" in (
        captured.err
    )
    assert "Traceback" not in captured.err + captured.out


def test_missing_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = run(
        [
            "validate",
            "--sessions",
            str(tmp_path / "nope.csv"),
            "--clients",
            str(write_csv(tmp_path / "c.csv", CLIENTS)),
        ]
    )
    assert status == 2
    assert "nope.csv: file not found" in capsys.readouterr().err


def test_chunked_reading_reports_true_line_numbers(tmp_path: Path) -> None:
    rows = [{"client_id": f"C{i}", "session_number": 1, "srs_total": 30.0} for i in range(50)]
    rows[37]["srs_total"] = "oops"
    path = write_csv(tmp_path / "sessions.csv", rows)
    problems = Problems()
    chunks = list(iter_session_chunks(CsvSource(path), 10, problems, []))
    assert sum(len(c) for c in chunks) == 50
    assert problems.shown == [
        "sessions.csv:39: column srs_total: value 'oops' is not a number from 0 to 40"
    ]
    assert pd.concat(chunks)["srs_total"].notna().sum() == 49


def test_a_gender_is_free_text_of_at_most_64_characters_without_control_characters(
    tmp_path: Path,
) -> None:
    """vocabulary.TEXT_RULE, as the API's gender fields apply it: any printable words
    (accents, spaces, "NA") pass; a NUL, an escape code or 65 characters do not, and a
    long value is shown cut."""
    fine = CLIENTS.replace("female", '"weiblich, nicht-binär"').replace(",male,", ",NA,")
    cohort = load_cohort(
        write_csv(tmp_path / "s.csv", SESSIONS), write_csv(tmp_path / "c.csv", fine), False, []
    )
    assert cohort.clients["gender"].tolist() == ["weiblich, nicht-binär", "NA"]
    long = "g" * 200
    bad = CLIENTS.replace("female", "fe\x00male").replace(",male,", f",{long},")
    error = _errors(tmp_path, SESSIONS, bad)
    rule = "is not 1-64 characters, none of them a control character"
    assert error.problems == [
        f"clients.csv:2: column gender: value 'fe\\x00male' {rule}",
        f"clients.csv:3: column gender: value {'g' * 80!r}... (200 characters) {rule}",
    ]
    assert len(_errors(tmp_path, SESSIONS, CLIENTS.replace("male,0", "\x1b[0m,0")).problems) == 1


def test_blank_required_session_number(tmp_path: Path) -> None:
    error = _errors(tmp_path, SESSIONS.replace("A-1,2,", "A-1,,"))
    assert error.problems == [
        "sessions.csv:3: column session_number: value '' "
        "is not an integer from 1 to 1000 (required)"
    ]


def test_bad_label_reported_once(tmp_path: Path) -> None:
    error = _errors(
        tmp_path, SESSIONS, CLIENTS.replace(",female,1", ",female,yes"), need_labels=True
    )
    assert error.problems == ["clients.csv:2: column dropout: value 'yes' is not 0/1 or true/false"]


def test_warning_shown_even_when_validation_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = SESSIONS.replace("phq9_total\n", "phq9_total,note\n", 1).replace(",14\n", ",14,x\n")
    status, _ = _run_validate(tmp_path, bad.replace(",35.5,", ",41,"))
    err = capsys.readouterr().err
    assert status == 2
    assert "warning: sessions.csv: ignoring unknown column(s): note" in err
    assert "value 41 is not a number from 0 to 40" in err


def test_client_lookup_checks_across_chunks(tmp_path: Path) -> None:
    rows = [{"client_id": f"C{i}", "age": 30, "gender": "female"} for i in range(40)]
    rows[25]["age"] = 7
    rows[33]["client_id"] = "C2"
    path = write_csv(tmp_path / "clients.csv", rows)
    problems = Problems()
    lookup = read_client_lookup(path, problems, [], chunk_rows=10)
    assert problems.shown == [
        "clients.csv:27: column age: value 7 is not an integer from 12 to 100",
        "clients.csv:35: column client_id: value 'C2' is a duplicate (client_id must be unique)",
    ]
    assert lookup is not None
    assert lookup["age"].dtype == np.float32
    assert lookup["gender"].dtype == "category"
    assert lookup.loc["C39", "age"] == 30


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    s = tmp_path / "sessions.csv"
    s.write_bytes(b"client_id,session_number\nA-1,1\n\xff\xfe\x00garbage,2\n")
    with pytest.raises(ContractError) as info:
        load_cohort(s, write_csv(tmp_path / "c.csv", CLIENTS), False, [])
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("sessions.csv: not a readable CSV file (")


# Two days past the last plausible date (today + 1): still refused if the run crosses midnight
TOO_LATE = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).date().isoformat()


@pytest.mark.parametrize("day", ["1900-01-01", "1989-12-31", "2100-01-01", TOO_LATE])
def test_implausible_session_dates_are_refused_with_the_window(
    tmp_path: Path, day: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outside 1990-01-01..today+1 (UTC): the window of training/vocabulary.py, exit 2."""
    bad = SESSIONS.replace("2026-01-12", day)
    error = _errors(tmp_path, bad)
    assert error.problems == [
        f"sessions.csv:3: column session_date: value '{day}' is not a date YYYY-MM-DD "
        f"{date_window()}"
    ]
    status, _ = _run_validate(tmp_path, bad)
    assert status == 2
    assert f"value '{day}' is not a date YYYY-MM-DD {date_window()}" in capsys.readouterr().err


def test_the_ends_of_the_date_window_are_accepted(tmp_path: Path) -> None:
    edges = SESSIONS.replace("2026-01-05", "1990-01-01").replace(
        "2026-01-12", latest_date().isoformat()
    )
    cohort = load_cohort(
        write_csv(tmp_path / "s.csv", edges), write_csv(tmp_path / "c.csv", CLIENTS), False, []
    )
    assert len(cohort.sessions) == 3


@pytest.mark.parametrize("dots", [".", "..", "..."])
def test_ids_of_dots_only_are_refused(tmp_path: Path, dots: str) -> None:
    clients = CLIENTS.replace("B.2,T1", f"{dots},{dots}")
    sessions = SESSIONS.replace("B.2,", f"{dots},")
    error = _errors(tmp_path, sessions, clients)
    assert error.problems == [
        f"clients.csv:3: column client_id: value '{dots}' is not {ID_RULE} (required)",
        f"clients.csv:3: column therapist_id: value '{dots}' is not {ID_RULE}",
        f"sessions.csv:4: column client_id: value '{dots}' is not {ID_RULE} (required)",
    ]
