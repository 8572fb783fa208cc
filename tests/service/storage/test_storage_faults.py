"""The database goes away and comes back (issue 4): stateless predictions keep answering,
stored endpoints give 503 with a clear message, and after the database returns they work
again without a restart.

PostgreSQL is reached through a TCP proxy in the test, which is cut (every connection
closed, new ones refused) and restored; SQLite's file is moved away and back (a volume
that went missing). A database that turns read-only (issue 11) is answered with 503 and
the service writes again by itself once it is writable. Bounded loops only.
"""

from __future__ import annotations

import logging
import shutil
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, event, make_url, text

from service.app import create_app
from service.core.examples import EXAMPLE_EPISODE
from service.core.settings import Settings
from service.storage import repository as repo
from service.storage.database import Storage
from service.storage.engine import StorageUnavailable
from tests.support.helpers import REPO, create_key
from tests.support.storage import server_url
from tests.support.ui import Ui, row_ids

SESSION = {"date": "2026-03-02", "wai": {"goal": 3.5, "task": 3.5, "bond": 4.0}}


class Proxy:
    """A loopback TCP proxy that can be cut (open connections closed, new ones refused) or
    blackholed (nothing forwarded any more, nothing closed: packets dropped in between)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.forwarding = threading.Event()
        self.forwarding.set()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            if not self.forwarding.is_set():  # accepted, then silence
                with self._lock:
                    self._sockets.append(client)
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self.forwarding.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up.clear()
        with self._lock:
            for s in self._sockets:
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    def blackhole(self) -> None:
        self.forwarding.clear()

    def restore(self) -> None:
        self.up.set()
        self.forwarding.set()

    def close(self) -> None:
        self.cut()
        self.server.close()


@contextmanager
def outage_control(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Any, Any]]:
    """(the URL the service uses, cut(), restore()) for the database kind at hand."""
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        away = tmp_path / "away.db"

        def cut_file(engine: Engine) -> None:
            shutil.move(path, away)
            path.mkdir()  # a directory where the file was: sqlite cannot open it
            # An open SQLite connection keeps reading the moved file through its descriptor;
            # a vanished volume takes those with it, so the pooled connections go too.
            engine.dispose()

        def restore_file() -> None:
            path.rmdir()
            shutil.move(away, path)

        yield database_url, cut_file, restore_file
        return
    url = make_url(database_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    try:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        yield proxied, lambda _engine: proxy.cut(), proxy.restore
    finally:
        proxy.close()


def test_database_outage_and_recovery(database_url: str, tmp_path: Path) -> None:
    with outage_control(database_url, tmp_path) as (url, cut, restore):
        token = create_key(url, "clinic-a", ["predict", "clients:write", "clients:read"])
        settings = Settings(
            models_dir=REPO / "models",
            database_url=url,
            pseudonym_key_file=tmp_path / "p.key",
            key_cache_seconds=0.2,  # the outage outlasts the cache: stale-if-error is used
        )
        auth = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(settings)) as client:
            assert client.put("/v1/clients/C-1", json={"age": 30}, headers=auth).status_code == 200
            put = client.put("/v1/clients/C-1/sessions/1", json=SESSION, headers=auth)
            assert put.status_code == 200

            cut(client.app.state.storage.engine)  # type: ignore[attr-defined]
            time.sleep(0.3)
            stored = client.get("/v1/clients/C-1/risk", headers=auth)
            assert stored.status_code == 503
            detail = stored.json()["detail"][0]
            assert detail["type"] == "storage_unavailable"
            assert "database cannot be reached" in detail["msg"]
            assert stored.headers["retry-after"] == "5"
            write = client.put("/v1/clients/C-1/sessions/2", json=SESSION, headers=auth)
            assert write.status_code == 503
            predicted = client.post("/v1/predictions", json=EXAMPLE_EPISODE, headers=auth)
            assert predicted.status_code == 200  # the key was verified before the outage
            assert 0 < predicted.json()["probability"] < 1

            restore()
            deadline = time.monotonic() + 20
            status = 0
            while time.monotonic() < deadline:
                status = client.get("/v1/clients/C-1/risk", headers=auth).status_code
                if status == 200:
                    break
                time.sleep(0.2)
            assert status == 200
            again = client.put("/v1/clients/C-1/sessions/2", json=SESSION, headers=auth)
            assert again.status_code == 200
            assert again.json()["status"] == "created"  # the write during the outage was lost
            history = client.get("/v1/clients/C-1/risk/history", headers=auth).json()["history"]
            assert [h["prediction"]["landmark_session"] for h in history] == [2, 1]


def test_unknown_key_during_an_outage_is_503_not_401(database_url: str, tmp_path: Path) -> None:
    """A key this process never verified cannot be checked while the database is away; the
    caller is told so (503), not that the key is wrong (401)."""
    with outage_control(database_url, tmp_path) as (url, cut, _restore):
        token = create_key(url, "clinic-a", ["predict"])
        settings = Settings(
            models_dir=REPO / "models", database_url=url, pseudonym_key_file=tmp_path / "p.key"
        )
        with TestClient(create_app(settings)) as client:
            cut(client.app.state.storage.engine)  # type: ignore[attr-defined]
            auth = {"Authorization": f"Bearer {token}"}
            response = client.post("/v1/predictions", json=EXAMPLE_EPISODE, headers=auth)
            assert response.status_code == 503
            assert response.json()["detail"][0]["type"] == "storage_unavailable"


@contextmanager
def read_only(database_url: str, engine: Engine) -> Iterator[None]:
    """The database is read-only and every connection of `engine` is reopened (as after a
    restart); leaving the block makes it writable again without touching those connections.

    PostgreSQL: the database's default_transaction_read_only (a standby after fail-over),
    fixed per connection when it opens. SQLite opens a write-protected file read-only for
    the connection's life; the tests run as root, whom file modes do not stop, so that
    open is made explicit with PRAGMA query_only (the same SQLITE_READONLY error).
    """
    if database_url.startswith("sqlite"):

        def query_only(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA query_only = ON")

        event.listen(engine, "connect", query_only)
        engine.dispose()
        try:
            yield
        finally:
            event.remove(engine, "connect", query_only)
        return
    name = make_url(database_url).database
    admin = create_engine(server_url(database_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
        engine.dispose()
        try:
            yield
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
    finally:
        admin.dispose()


def test_read_only_database_is_503_and_writes_resume_by_themselves(
    database_url: str, tmp_path: Path, caplog: Any
) -> None:
    """Issue 11: writes to a read-only database were a plain-text 500, and stayed 500 after
    it was writable again, until a restart. Now: 503 JSON with Retry-After, no client data
    in the answer or the logs, and the next write after the database is back succeeds."""
    token = create_key(database_url, "clinic-a", ["clients:write", "clients:read"])
    settings = Settings(
        models_dir=REPO / "models", database_url=database_url, pseudonym_key_file=tmp_path / "k"
    )
    auth = {"Authorization": f"Bearer {token}"}
    secret, therapist = "RO-SECRET-4711", "T-SECRET-93"
    body = {"age": 61, "therapist_id": therapist}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        logging.getLogger("dropout_risk").addHandler(caplog.handler)
        caplog.set_level(logging.DEBUG)
        engine = client.app.state.storage.engine  # type: ignore[attr-defined]
        with read_only(database_url, engine):
            for path in (f"/v1/clients/{secret}", "/v1/clients/C-2"):
                refused = client.put(path, json=body, headers=auth)
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] == "5"
                assert refused.json()["detail"][0]["type"] == "storage_unavailable"
                assert secret not in refused.text
        written = client.put(f"/v1/clients/{secret}", json=body, headers=auth)
        assert (written.status_code, written.json()) == (
            200,
            {"client_id": secret, "status": "created"},
        )
        logging.getLogger("dropout_risk").removeHandler(caplog.handler)
    # the service's lines and the libraries' (not the test's own HTTP client, which logs
    # the URLs it calls), formatted as a handler would write them, tracebacks included
    lines = "\n".join(
        caplog.handler.format(r) for r in caplog.records if not r.name.startswith("httpx")
    )
    assert "storage unavailable" in lines  # the failures were logged ...
    assert secret not in lines  # ... without client data
    assert therapist not in lines


def test_a_failing_writes_traceback_names_no_client(database_url: str) -> None:
    """Issue 11: SQLAlchemy's errors print the statement's parameters (client ids, ages);
    every engine hides them, so even a full traceback of a failed write names no client."""
    storage = Storage(database_url)
    secret, therapist = "TB-SECRET-0815", "T-SECRET-93"
    try:
        with (
            read_only(database_url, storage.engine),
            pytest.raises(StorageUnavailable) as caught,
            storage.session() as s,
        ):
            repo.upsert_client(s, "clinic-a", secret, 40, None, therapist)
    finally:
        storage.close()
    printed = "".join(traceback.format_exception(caught.value))
    assert "[SQL parameters hidden due to hide_parameters=True]" in printed
    assert secret not in printed
    assert therapist not in printed


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_blackholed_postgresql_is_503_not_a_hang(database_url: str, tmp_path: Path) -> None:
    """Issue 11: with PostgreSQL's packets dropped (no reset), writes, caseload reads and
    risk reads hung for 40 s and more. Every call to the database is bounded now: each
    answers 503 (a hang detector allows 15 s), predictions keep answering, and the stored
    routes work again when the packets flow again. (SQLite is a local file: no network.)"""
    url = make_url(database_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    token = create_key(proxied, "clinic-a", ["predict", "clients:write", "clients:read"])
    settings = Settings(
        models_dir=REPO / "models", database_url=proxied, pseudonym_key_file=tmp_path / "k"
    )
    auth = {"Authorization": f"Bearer {token}"}
    requests = [("PUT", f"/v1/clients/C-1/sessions/{n}", SESSION) for n in range(1, 5)]
    requests += [("GET", "/v1/caseload", None)] * 4 + [("GET", "/v1/clients/C-1/risk", None)]
    try:
        with TestClient(create_app(settings)) as client:
            assert client.put("/v1/clients/C-1", json={"age": 30}, headers=auth).status_code == 200
            with ThreadPoolExecutor(len(requests)) as pool:

                def send_all() -> list[Future[Any]]:
                    return [
                        pool.submit(client.request, m, p, json=b, headers=auth)
                        for m, p, b in requests
                    ]

                warm = [call.result().status_code for call in send_all()]  # pooled connections
                proxy.blackhole()
                calls = send_all()
                _done, hanging = wait(calls, timeout=15)
                proxy.cut()  # frees any request still hanging, so the test ends either way
            assert not hanging, f"{len(hanging)} of {len(calls)} requests hung"
            assert set(warm) <= {200, 404}  # 404: the risk read before the first session
            for call in calls:
                answer = call.result()
                assert answer.status_code == 503, answer.text
                assert answer.headers["retry-after"] == "5"
                assert answer.json()["detail"][0]["type"] == "storage_unavailable"
            predicted = client.post("/v1/predictions", json=EXAMPLE_EPISODE, headers=auth)
            assert predicted.status_code == 200
            proxy.restore()
            deadline, status = time.monotonic() + 20, 0
            while status != 200 and time.monotonic() < deadline:
                status = client.get("/v1/caseload", headers=auth).status_code
            assert status == 200
    finally:
        proxy.close()


def test_read_only_database_is_a_503_page_in_the_clinician_view(ui: Ui) -> None:
    """Issue 11: the clinician view's pages (which audit every read) were a plain-text 500
    on a read-only database; now its 503 page, and the page again once it is writable."""
    ui.signed_in("a")
    engine = ui.http.app.state.storage.engine  # type: ignore[attr-defined]
    with read_only(ui.url, engine):
        response = ui.http.get("/ui/caseload", follow_redirects=False)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "<h1>Service unavailable</h1>" in response.text
    assert "hi" in row_ids(ui.page("/ui/caseload"))
