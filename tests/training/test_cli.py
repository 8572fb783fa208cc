"""The command line: every command answers --help, train's last line is the version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.helpers import train
from training.cli import run

COMMANDS = [
    ["validate"],
    ["simulate"],
    ["train"],
    ["update"],
    ["compare"],
    ["evaluate"],
    ["predict"],
    ["serve"],
    ["models"],
    ["models", "list"],
    ["models", "promote"],
    ["models", "report-path"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_answers_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"Usage: dropout-risk {' '.join(command)}" in out


def test_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["simulate", "--clients", "0", "--seed", "1", "--out", "x"]) == 2
    assert "--clients" in capsys.readouterr().err


def test_train_prints_version_last(
    small_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    assert train(small_cohort, models, "--seed", "3", "--flag-rates", "0.5,0.2") == 0
    out = capsys.readouterr().out.strip().splitlines()
    registry = json.loads((models / "registry.json").read_text())
    assert out[-1] == registry["champion"] == registry["versions"][0]["version"]
    assert any(line.startswith("AUC") for line in out)
    meta = json.loads((models / out[-1] / "metadata.json").read_text())
    assert meta["thresholds"]["validation"]["high"]["flag_rate"] == pytest.approx(0.2, abs=0.02)


def test_bad_option_values_exit_2(
    small_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "train",
        "--sessions",
        str(small_cohort / "sessions.csv"),
        "--clients",
        str(small_cohort / "clients.csv"),
        "--models-dir",
        str(tmp_path),
    ]
    assert run([*args, "--thresholds", "0.3,0.2"]) == 2
    assert "--thresholds: value '0.3,0.2' must satisfy 0 < moderate < high < 1" in (
        capsys.readouterr().err
    )
    assert run([*args, "--landmarks", "0,2"]) == 2
    assert "--landmarks: value '0,2' must be session numbers from 1 to 12" in (
        capsys.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []


def test_serve_takes_settings_and_options_override_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import service.commands.serve

    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(service.commands.serve, "run_server", lambda *a: calls.append(a))
    monkeypatch.setenv("DROPOUT_RISK_PORT", "9001")
    monkeypatch.setenv("DROPOUT_RISK_WORKERS", "3")
    monkeypatch.setenv("DROPOUT_RISK_MODELS_DIR", "/srv/models")
    assert run(["serve"]) == 0
    assert run(["serve", "--port", "9100", "--host", "0.0.0.0"]) == 0
    assert calls == [
        ("127.0.0.1", 9001, 3, Path("/srv/models")),
        ("0.0.0.0", 9100, 3, Path("/srv/models")),
    ]


def test_the_listing_shows_each_service_command_with_its_own_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`dropout-risk --help` reads the service commands' help from their source (without
    importing them); it must be what the command itself says."""
    from training.cli import SERVICE_COMMANDS, service_command, service_help

    for name in SERVICE_COMMANDS:
        real = service_command(name)
        assert service_help(name) == real.help
        assert real.help
    assert run(["--help"]) == 0
    listed = [
        line.split()[0]
        for line in capsys.readouterr().out.split("Commands:")[1].splitlines()
        if line.strip()
    ]
    assert listed == [
        "validate", "simulate", "train", "update", "compare", "evaluate", "predict", "models",
        "serve", "keys", "db", "export", "audit", "demo", "monitor", "retrain",
    ]  # fmt: skip


@pytest.mark.parametrize("command", [["db", "upgrade"], ["keys", "list"]], ids=str)
def test_an_unreachable_database_is_one_error_line_from_every_group(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The one domain-error handler answers for the lazily loaded service groups too."""
    url = "postgresql://postgres@127.0.0.1:1/h8_nothing_listens_here"
    assert run([*command, "--database-url", url]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


def test_an_output_that_cannot_be_written_exits_2_before_the_work(
    small_cohort: Path,
    trained_registry: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each command checks where it will write before it reads or trains anything
    (training.cli_support.output_file / output_folder): one error line naming the option
    and the path, exit 2, nothing written. A failure the checks cannot foresee (here a
    write the system refuses) is the same one line, never a traceback."""
    cohort = ["--sessions", str(small_cohort / "sessions.csv")]
    labelled = [*cohort, "--clients", str(small_cohort / "clients.csv")]
    registry = ["--models-dir", str(trained_registry), "--model", "champion"]
    missing = tmp_path / "no-such-folder" / "report.html"
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    cases = [
        (
            ["evaluate", *labelled, *registry, "--out", str(missing)],
            f"--out: the folder of '{missing}' does not exist (create it first)",
        ),
        (
            ["predict", *cohort, *registry, "--out", str(tmp_path)],
            f"--out: '{tmp_path}' is a folder; give the file's name",
        ),
        (
            ["simulate", "--clients", "10", "--seed", "1", "--out", str(a_file)],
            f"--out: '{a_file}' is a file, not a folder",
        ),
        (
            ["train", *labelled, "--models-dir", str(a_file / "models")],
            f"--models-dir: cannot create the folder '{a_file / 'models'}' ('{a_file}' is a file)",
        ),
    ]
    for args, message in cases:
        assert run(args) == 2, args
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1] == f"error: {message}", err
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]

    def refused(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / ".report.html.partial"))

    monkeypatch.setattr(Path, "write_text", refused)
    out = tmp_path / "report.html"
    assert run(["evaluate", *labelled, *registry, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        f"error: {tmp_path / '.report.html.partial'}: Permission denied"
    )
