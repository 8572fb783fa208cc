"""API keys: tokens verify to their key, only hashes are stored, the CLI is scriptable."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from service.keys import SCOPES, ApiKey, KeyStore, KeyStoreError
from service.keys_cli import keys_app

TOKEN = re.compile(r"drk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "var" / "keys.json"  # var/ does not exist yet


@pytest.fixture
def store(keys_file: Path) -> KeyStore:
    return KeyStore(keys_file)


def _parts(token: str) -> tuple[str, str]:
    match = TOKEN.fullmatch(token)
    assert match is not None, token
    return match[1], match[2]


def test_created_token_verifies_to_its_key(store: KeyStore) -> None:
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
    assert KeyStore(store.path).verify(token) == key  # a fresh reader of the file agrees


def test_file_stores_only_the_hash_with_mode_600(store: KeyStore, keys_file: Path) -> None:
    key, token = store.create("front desk", "clinic-1", ["predict"])
    _, secret = _parts(token)
    raw = keys_file.read_text()
    for start in range(len(secret) - 8 + 1):  # not even 8 characters of the secret
        assert secret[start : start + 8] not in raw
    assert token not in raw
    (entry,) = json.loads(raw)["keys"]
    assert entry == {
        "key_id": key.key_id,
        "name": "front desk",
        "tenant": "clinic-1",
        "scopes": ["predict"],
        "created_at": key.created_at,
        "sha256": hashlib.sha256(secret.encode()).hexdigest(),
        "revoked_at": None,
    }
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    store.revoke(key.key_id)  # a rewrite keeps the mode
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert [p.name for p in keys_file.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_wrong_tokens_do_not_verify(store: KeyStore) -> None:
    key, token = store.create("a", "clinic", ["predict"])
    other, other_token = store.create("b", "clinic", ["predict"])
    key_id, secret = _parts(token)
    wrong_secret = f"drk_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    assert store.verify(wrong_secret) is None
    assert store.verify(f"drk_{other.key_id}_{secret}") is None  # id of another key
    assert store.verify(f"drk_{'0' * 12 if key_id != '0' * 12 else '1' * 12}_{secret}") is None
    for malformed in [
        "",
        "drk_",
        secret,
        f"{key_id}_{secret}",
        f"drk-{key_id}-{secret}",
        f"DRK_{key_id}_{secret}",
        f"drk_{key_id.upper()}_{secret}",
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
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = store.create("a", "clinic", ["predict"])
    _, secret = _parts(token)
    calls: list[tuple[str, str]] = []

    def compare(a: str, b: str) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr("service.keys.hmac.compare_digest", compare)
    assert store.verify(f"drk_{'f' * 12}_{secret}") is None
    assert store.verify(f"drk_{'e' * 12}_{'x' * 43}") is None
    assert len(calls) == 2
    assert all(len(a) == len(b) == 64 for a, b in calls)


def test_missing_file_means_no_keys(store: KeyStore, keys_file: Path) -> None:
    assert store.verify(f"drk_{'a' * 12}_{'b' * 43}") is None
    assert store.list() == []
    assert not keys_file.parent.exists()  # reading creates nothing


def test_long_lived_store_sees_keys_from_another_instance(keys_file: Path) -> None:
    server = KeyStore(keys_file, stat_interval=0.0)
    assert server.verify(f"drk_{'a' * 12}_{'b' * 43}") is None  # cached: no file yet
    cli = KeyStore(keys_file)
    key, token = cli.create("ops", "clinic", ["predict", "models:admin"])
    assert server.verify(token) == key
    second, second_token = cli.create("ops 2", "clinic", ["predict"])
    assert server.verify(second_token) == second
    cli.revoke(key.key_id)
    assert server.verify(token) is None
    assert server.verify(second_token) == second


def test_default_store_accepts_a_new_key_within_a_second(keys_file: Path) -> None:
    server = KeyStore(keys_file)
    assert server.verify(f"drk_{'a' * 12}_{'b' * 43}") is None
    key, token = KeyStore(keys_file).create("ops", "clinic", ["predict"])
    seen = threading.Event()

    def poll() -> None:
        while not seen.is_set():
            if server.verify(token) == key:
                seen.set()

    worker = threading.Thread(target=poll, daemon=True)
    worker.start()
    accepted = seen.wait(timeout=1.0)
    seen.set()
    worker.join()
    assert accepted


def test_verify_stats_the_file_at_most_once_per_interval(
    keys_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = KeyStore(keys_file).create("ops", "clinic", ["predict"])
    real_stat = os.stat
    stats: list[object] = []

    def counting_stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if path == keys_file:
            stats.append(path)
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", counting_stat)
    throttled = KeyStore(keys_file, stat_interval=3600.0)
    for _ in range(200):
        assert throttled.verify(token) is not None
    assert len(stats) <= 1  # the first call reads the file (fstat), later ones use the cache
    eager = KeyStore(keys_file, stat_interval=0.0)
    eager.verify(token)
    stats.clear()
    for _ in range(50):
        eager.verify(token)
    assert len(stats) == 50  # one os.stat per call, no re-read while the file is unchanged


def test_list_shows_active_keys_oldest_first(store: KeyStore) -> None:
    first, _ = store.create("a", "clinic-a", ["predict"])
    second, _ = store.create("b", "clinic-b", ["clients:read", "clients:write"])
    third, _ = store.create("c", "clinic-c", list(SCOPES))
    store.revoke(second.key_id)
    assert store.list() == [first, third]
    assert third.scopes == frozenset(SCOPES)


def test_concurrent_creates_lose_no_key(keys_file: Path) -> None:
    tokens: list[str] = []

    def create_many() -> None:
        store = KeyStore(keys_file)
        for i in range(15):
            tokens.append(store.create(f"k{i}", "clinic", ["predict"])[1])

    threads = [threading.Thread(target=create_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader = KeyStore(keys_file)
    assert len(reader.list()) == 60
    assert all(reader.verify(token) is not None for token in tokens)


BAD_INPUT: list[tuple[str, Callable[[KeyStore], object], list[str]]] = [
    (
        "tenant chars",
        lambda s: s.create("a", "clinic 1", ["predict"]),
        ["tenant", "'clinic 1'", "1 to 64 characters from A-Z a-z 0-9 . _ -"],
    ),
    (
        "tenant empty",
        lambda s: s.create("a", "", ["predict"]),
        ["tenant", "''", "1 to 64 characters"],
    ),
    (
        "tenant too long",
        lambda s: s.create("a", "t" * 65, ["predict"]),
        ["tenant", repr("t" * 65), "1 to 64 characters"],
    ),
    (
        "unknown scope",
        lambda s: s.create("a", "clinic", ["predict", "admin"]),
        ["scopes", "'admin'", "not one of: predict, models:admin, clients:write, clients:read"],
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
        ["key_id", "'0123456789ab'", "must be the id of a key in", "keys.json"],
    ),
]


@pytest.mark.parametrize(("case", "call", "expected"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_names_field_value_and_rule(
    store: KeyStore,
    keys_file: Path,
    case: str,
    call: Callable[[KeyStore], object],
    expected: list[str],
) -> None:
    with pytest.raises(KeyStoreError) as info:
        call(store)
    message = str(info.value)
    assert message.startswith(f"{expected[0]}: value ")
    for part in expected:
        assert part in message
    assert "\n" not in message
    assert not keys_file.exists()  # nothing written


def test_limits_are_inclusive(store: KeyStore) -> None:
    key, token = store.create("n" * 64, "t" * 64, ["predict"])
    assert store.verify(token) == key


def test_revoking_twice_is_an_error(store: KeyStore) -> None:
    key, _ = store.create("a", "clinic", ["predict"])
    store.revoke(key.key_id)
    with pytest.raises(KeyStoreError, match=rf"key_id: value '{key.key_id}' was already revoked"):
        store.revoke(key.key_id)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not valid JSON"),
        ('{"keys": {}}', "has no 'keys' list"),
        ('{"keys": [{"key_id": "abc"}]}', "entry 0: missing field"),
        (
            '{"keys": [{"key_id": "0123456789ab", "name": "a", "tenant": "a b", '
            '"scopes": ["predict"], "created_at": "x", "sha256": "' + "0" * 64 + '"}]}',
            "entry 0: tenant: value 'a b'",
        ),
    ],
)
def test_broken_file_is_reported(keys_file: Path, content: str, problem: str) -> None:
    keys_file.parent.mkdir()
    keys_file.write_text(content)
    store = KeyStore(keys_file)
    for call in (store.list, lambda: store.verify(f"drk_{'a' * 12}_{'b' * 43}")):
        with pytest.raises(KeyStoreError, match=re.escape(problem)) as info:
            call()
        assert str(keys_file) in str(info.value)


# ---- the CLI


def _invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(keys_app, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_cli_create_prints_the_token_alone(keys_file: Path) -> None:
    code, out, err = _invoke(
        [
            "create",
            "--name",
            "front desk",
            "--tenant",
            "clinic-1",
            "--scopes",
            "predict, models:admin",
            "--keys-file",
            str(keys_file),
        ]
    )
    assert code == 0
    assert TOKEN.fullmatch(out[:-1]) is not None
    assert out.endswith("\n")
    assert out.count("\n") == 1
    key = KeyStore(keys_file).verify(out[:-1])
    assert key is not None
    assert (key.name, key.tenant, key.scopes) == (
        "front desk",
        "clinic-1",
        frozenset({"predict", "models:admin"}),
    )
    assert key.key_id in err
    assert out[:-1] not in err


def test_cli_keys_file_defaults_to_the_env_var(keys_file: Path) -> None:
    env = {"DROPOUT_RISK_KEYS_FILE": str(keys_file)}
    code, out, _ = _invoke(
        ["create", "--name", "a", "--tenant", "c", "--scopes", "predict"], env=env
    )
    assert code == 0
    assert KeyStore(keys_file).verify(out.strip()) is not None


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["--tenant", "c", "--scopes", "predict,admin"], "error: scopes: value 'admin' is not"),
        (["--tenant", "c", "--scopes", " , "], "error: scopes: value [] must name"),
        (["--tenant", "c d", "--scopes", "predict"], "error: tenant: value 'c d' must be"),
    ],
)
def test_cli_bad_input_exits_2_with_one_error_line(
    keys_file: Path, args: list[str], start: str
) -> None:
    code, out, err = _invoke(["create", "--name", "a", *args, "--keys-file", str(keys_file)])
    assert code == 2
    assert out == ""
    assert err.startswith(start)
    assert err.count("\n") == 1
    assert not keys_file.exists()


def test_cli_list_never_prints_secrets(keys_file: Path) -> None:
    store = KeyStore(keys_file)
    first, first_token = store.create("front desk", "clinic-1", ["predict"])
    second, second_token = store.create("ops", "clinic-2", ["models:admin", "predict"])
    revoked, revoked_token = store.create("old", "clinic-3", ["predict"])
    store.revoke(revoked.key_id)
    code, out, _ = _invoke(["list", "--keys-file", str(keys_file)])
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
    raw = json.loads(keys_file.read_text())
    for token in (first_token, second_token, revoked_token):
        assert _parts(token)[1] not in out
    for entry in raw["keys"]:
        assert entry["sha256"] not in out


def test_cli_list_empty(keys_file: Path) -> None:
    code, out, _ = _invoke(["list", "--keys-file", str(keys_file)])
    assert (code, out) == (0, f"no API keys in {keys_file}\n")


def test_cli_revoke(keys_file: Path) -> None:
    key, token = KeyStore(keys_file).create("a", "clinic", ["predict"])
    code, out, _ = _invoke(["revoke", key.key_id, "--keys-file", str(keys_file)])
    assert (code, out) == (0, f"revoked {key.key_id}\n")
    assert KeyStore(keys_file).verify(token) is None
    code, out, err = _invoke(["revoke", key.key_id, "--keys-file", str(keys_file)])
    assert (code, out) == (2, "")
    assert err.startswith(f"error: key_id: value '{key.key_id}' was already revoked")
    code, _, err = _invoke(["revoke", "nope", "--keys-file", str(keys_file)])
    assert code == 2
    assert err.startswith("error: key_id: value 'nope' must be the id of a key")


@pytest.mark.parametrize("command", [[], ["create"], ["list"], ["revoke"]], ids=str)
def test_cli_every_command_answers_help(command: list[str]) -> None:
    code, out, _ = _invoke([*command, "--help"])
    assert code == 0
    assert "Usage:" in out
    if command:
        assert "--keys-file" in out


def test_cli_as_a_sub_command(keys_file: Path) -> None:
    """Mounted as `keys` (as training/cli.py does), errors still exit 2."""
    parent = typer.Typer()
    parent.add_typer(keys_app, name="keys")
    result = CliRunner().invoke(parent, ["keys", "revoke", "nope", "--keys-file", str(keys_file)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: key_id:")


def test_cli_and_server_default_to_the_same_keys_file() -> None:
    from service.keys_cli import DEFAULT_KEYS_FILE, KEYS_FILE_ENV
    from service.settings import Settings

    assert Settings.model_fields["keys_file"].default == DEFAULT_KEYS_FILE
    assert Settings.model_config.get("env_prefix", "") + "KEYS_FILE" == KEYS_FILE_ENV
