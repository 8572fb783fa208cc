"""API keys: tokens verify to their key, only hashes are stored, the CLI is scriptable."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from service.commands.keys import keys_app
from service.security.api_keys import SCOPES, ApiKey, KeyStoreError
from service.security.key_store import DbKeyStore
from service.storage.database import Storage
from service.storage.tables import ApiKeyRow
from training.vocabulary import ID_RULE

TOKEN = re.compile(r"drk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'var' / 'service.db'}"  # var/ does not exist yet


def _store(url: str) -> DbKeyStore:
    storage = Storage(url)
    storage.ensure_migrated()
    return DbKeyStore(storage.factory)


@pytest.fixture
def store(url: str) -> DbKeyStore:
    return _store(url)


def test_database_stores_only_the_hash(store: DbKeyStore, url: str) -> None:
    key, token = store.create("front desk", "clinic-1", ["predict"])
    _, secret = _parts(token)
    raw = Path(url.removeprefix("sqlite:///")).read_bytes()
    assert secret.encode() not in raw
    assert token.encode() not in raw
    with store.factory() as s:
        row = s.get(ApiKeyRow, key.key_id)
        assert row is not None
        assert row.sha256 == hashlib.sha256(secret.encode()).hexdigest()
        assert (row.clinic_id, row.scopes, row.revoked_at) == ("clinic-1", "predict", None)


def _parts(token: str) -> tuple[str, str]:
    match = TOKEN.fullmatch(token)
    assert match is not None, token
    return match[1], match[2]


def test_created_token_verifies_to_its_key(store: DbKeyStore, url: str) -> None:
    key, token = store.create("front desk", "clinic-1.north_A", ["predict", "clients:read"])
    key_id, _ = _parts(token)
    assert key.key_id == key_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", key.created_at)
    assert store.verify(token) == ApiKey(
        key_id,
        "front desk",
        "clinic-1.north_A",
        frozenset({"predict", "clients:read"}),
        key.created_at,
    )
    assert _store(url).verify(token) == key  # another process's store agrees


def test_wrong_tokens_do_not_verify(store: DbKeyStore) -> None:
    key, token = store.create("a", "clinic", ["predict"])
    other, other_token = store.create("b", "clinic", ["predict"])
    key_id, secret = _parts(token)
    wrong_secret = f"drk_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    assert store.verify(wrong_secret) is None
    assert store.verify(f"drk_{other.key_id}_{secret}") is None  # id of another key
    assert store.verify(f"drk_{'0' * 12 if key_id != '0' * 12 else '1' * 12}_{secret}") is None
    # an id in upper case is malformed; an id of digits alone has no upper case of its own
    # (about 1 in 280 ids), so one letter is made upper case instead
    upper = key_id.upper() if key_id.upper() != key_id else f"A{key_id[1:]}"
    for malformed in [
        "",
        "drk_",
        secret,
        f"{key_id}_{secret}",
        f"drk-{key_id}-{secret}",
        f"DRK_{key_id}_{secret}",
        f"drk_{upper}_{secret}",
        f"{token}x",
        f"{token}\n",
        f" {token}",
        f"Bearer {token}",
        token[:-1],
        f"drk_{key_id}_{secret[:-1]}é",
    ]:
        assert store.verify(malformed) is None, malformed
    assert store.verify(token) == key
    store.revoke(key.key_id)
    assert store.verify(token) is None
    assert store.verify(other_token) == other


def test_unknown_id_is_compared_like_a_known_one(
    store: DbKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = store.create("a", "clinic", ["predict"])
    _, secret = _parts(token)
    calls: list[tuple[str, str]] = []

    def compare(a: str, b: str) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr("service.security.key_store.hmac.compare_digest", compare)
    assert store.verify(f"drk_{'f' * 12}_{secret}") is None
    assert store.verify(f"drk_{'e' * 12}_{'x' * 43}") is None
    assert len(calls) == 2
    assert all(len(a) == len(b) == 64 for a, b in calls)


def test_list_shows_active_keys_oldest_first(store: DbKeyStore) -> None:
    first, _ = store.create("a", "clinic-a", ["predict"])
    second, _ = store.create("b", "clinic-b", ["clients:read", "clients:write"])
    third, _ = store.create("c", "clinic-c", list(SCOPES))
    store.revoke(second.key_id)
    assert store.list() == [first, third]
    assert third.scopes == frozenset(SCOPES)


def test_concurrent_creates_lose_no_key(url: str) -> None:
    tokens: list[str] = []
    _store(url)  # migrated once, before the threads

    def create_many() -> None:
        store = _store(url)
        for i in range(15):
            tokens.append(store.create(f"k{i}", "clinic", ["predict"])[1])

    threads = [threading.Thread(target=create_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader = _store(url)
    assert len(reader.list()) == 60
    assert all(reader.verify(token) is not None for token in tokens)


BAD_INPUT: list[tuple[str, Callable[[DbKeyStore], object], list[str]]] = [
    (
        "tenant chars",
        lambda s: s.create("a", "clinic 1", ["predict"]),
        ["tenant", "'clinic 1'", ID_RULE],
    ),
    (
        "tenant empty",
        lambda s: s.create("a", "", ["predict"]),
        ["tenant", "''", ID_RULE],
    ),
    (
        "tenant too long",
        lambda s: s.create("a", "t" * 65, ["predict"]),
        ["tenant", repr("t" * 65), ID_RULE],
    ),
    (
        "tenant only dots",
        lambda s: s.create("a", "..", ["predict"]),
        ["tenant", "'..'", ID_RULE],
    ),
    (
        "unknown scope",
        lambda s: s.create("a", "clinic", ["predict", "admin"]),
        [
            "scopes",
            "'admin'",
            "not one of: predict, models:admin, models:network, clients:write, clients:read",
        ],
    ),
    (
        "empty scopes",
        lambda s: s.create("a", "clinic", []),
        ["scopes", "[]", "at least one of: predict, models:admin"],
    ),
    (
        "scopes as one string",
        lambda s: s.create("a", "clinic", "predict"),
        ["scopes", "'predict'", "not one string"],
    ),
    (
        "name too long",
        lambda s: s.create("n" * 65, "clinic", ["predict"]),
        ["name", repr("n" * 65), "1 to 64 printable characters", "got 65"],
    ),
    (
        "name empty",
        lambda s: s.create("", "clinic", ["predict"]),
        ["name", "''", "1 to 64 printable characters"],
    ),
    (
        "name not printable",
        lambda s: s.create("a\nb", "clinic", ["predict"]),
        ["name", "'a\\nb'", "printable"],
    ),
    (
        "name blank",
        lambda s: s.create("   ", "clinic", ["predict"]),
        ["name", "'   '", "not only spaces"],
    ),
    (
        "revoke unknown id",
        lambda s: s.revoke("0123456789ab"),
        ["key_id", "'0123456789ab'", "must be the id of a key"],
    ),
]


@pytest.mark.parametrize(("case", "call", "expected"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_names_field_value_and_rule(
    store: DbKeyStore,
    url: str,
    case: str,
    call: Callable[[DbKeyStore], object],
    expected: list[str],
) -> None:
    with pytest.raises(KeyStoreError) as info:
        call(store)
    message = str(info.value)
    assert message.startswith(f"{expected[0]}: value ")
    for part in expected:
        assert part in message
    assert "\n" not in message
    assert store.list() == []  # nothing written


def test_limits_are_inclusive(store: DbKeyStore) -> None:
    key, token = store.create("n" * 64, "t" * 64, ["predict"])
    assert store.verify(token) == key


def test_revoking_twice_is_an_error(store: DbKeyStore) -> None:
    key, _ = store.create("a", "clinic", ["predict"])
    store.revoke(key.key_id)
    with pytest.raises(KeyStoreError, match=rf"key_id: value '{key.key_id}' was already revoked"):
        store.revoke(key.key_id)


# ---- the CLI


def _invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(keys_app, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_cli_create_prints_the_token_alone(url: str) -> None:
    code, out, err = _invoke(
        [
            "create",
            "--name",
            "front desk",
            "--tenant",
            "clinic-1",
            "--scopes",
            "predict, models:network",
            "--database-url",
            url,
        ]
    )
    assert code == 0
    assert TOKEN.fullmatch(out[:-1]) is not None
    assert out.endswith("\n")
    assert out.count("\n") == 1
    key = _store(url).verify(out[:-1])
    assert key is not None
    assert (key.name, key.tenant, key.scopes) == (
        "front desk",
        "clinic-1",
        frozenset({"predict", "models:network"}),
    )
    assert key.key_id in err
    assert out[:-1] not in err


def test_cli_database_defaults_to_the_env_var(url: str) -> None:
    env = {"DATABASE_URL": url}
    code, out, _ = _invoke(
        ["create", "--name", "a", "--tenant", "c", "--scopes", "predict"], env=env
    )
    assert code == 0
    assert _store(url).verify(out.strip()) is not None


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["--tenant", "c", "--scopes", "predict,admin"], "error: scopes: value 'admin' is not"),
        (["--tenant", "c", "--scopes", " , "], "error: scopes: value [] must name"),
        (["--tenant", "c d", "--scopes", "predict"], "error: tenant: value 'c d' must be"),
    ],
)
def test_cli_bad_input_exits_2_with_one_error_line(url: str, args: list[str], start: str) -> None:
    code, out, err = _invoke(["create", "--name", "a", *args, "--database-url", url])
    assert code == 2
    assert out == ""
    assert err.startswith(start)
    assert err.count("\n") == 1
    assert _store(url).list() == []


def test_cli_list_never_prints_secrets(url: str) -> None:
    store = _store(url)
    first, first_token = store.create("front desk", "clinic-1", ["predict"])
    second, second_token = store.create("ops", "clinic-2", ["models:admin", "predict"])
    revoked, revoked_token = store.create("old", "clinic-3", ["predict"])
    store.revoke(revoked.key_id)
    code, out, _ = _invoke(["list", "--database-url", url])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["KEY_ID", "NAME", "TENANT", "SCOPES", "CREATED"]
    assert len(lines) == 3
    assert lines[1].startswith(first.key_id)
    assert "front desk" in lines[1]
    assert "clinic-1" in lines[1]
    assert lines[2].split() == [
        second.key_id,
        "ops",
        "clinic-2",
        "predict,models:admin",
        second.created_at,
    ]
    assert revoked.key_id not in out
    for token in (first_token, second_token, revoked_token):
        assert _parts(token)[1] not in out
        assert hashlib.sha256(_parts(token)[1].encode()).hexdigest() not in out


def test_cli_list_empty(url: str) -> None:
    code, out, _ = _invoke(["list", "--database-url", url])
    assert (code, out) == (0, "no API keys\n")


def test_cli_revoke(url: str) -> None:
    key, token = _store(url).create("a", "clinic", ["predict"])
    code, out, _ = _invoke(["revoke", key.key_id, "--database-url", url])
    assert (code, out) == (0, f"revoked {key.key_id}\n")
    assert _store(url).verify(token) is None
    code, out, err = _invoke(["revoke", key.key_id, "--database-url", url])
    assert (code, out) == (2, "")
    assert err.startswith(f"error: key_id: value '{key.key_id}' was already revoked")
    code, _, err = _invoke(["revoke", "nope", "--database-url", url])
    assert code == 2
    assert err.startswith("error: key_id: value 'nope' must be the id of a key")


@pytest.mark.parametrize("command", [[], ["create"], ["list"], ["revoke"]], ids=str)
def test_cli_every_command_answers_help(command: list[str]) -> None:
    code, out, _ = _invoke([*command, "--help"])
    assert code == 0
    assert "Usage:" in out
    if command:
        assert "--database-url" in out


def test_cli_as_a_sub_command(url: str) -> None:
    """Mounted as `keys` (as training/cli.py does), errors still exit 2."""
    parent = typer.Typer()
    parent.add_typer(keys_app, name="keys")
    result = CliRunner().invoke(parent, ["keys", "revoke", "nope", "--database-url", url])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: key_id:")


def test_cli_and_server_default_to_the_same_database() -> None:
    from service.commands.db import DEFAULT_DATABASE_URL
    from service.core.settings import Settings

    assert Settings.model_fields["database_url"].default == DEFAULT_DATABASE_URL


def test_therapist_binding_and_active_lookup(store: DbKeyStore) -> None:
    key, token = store.create("dr who", "clinic-1", ["clients:read"], therapist_id="T-7")
    assert key.therapist_id == "T-7"
    assert store.verify(token) == key
    assert store.active(key.key_id) == key
    assert store.active("0" * 12) is None
    store.revoke(key.key_id)
    assert store.active(key.key_id) is None
    with pytest.raises(KeyStoreError, match="therapist_id: value 'T 7'"):
        store.create("x", "clinic-1", ["clients:read"], therapist_id="T 7")
