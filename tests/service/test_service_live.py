"""The real server (`dropout-risk serve`, 2 uvicorn workers) on a loopback port: promotion
while a load of requests runs, and metrics merged across workers. Loops are bounded."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.core.examples import EXAMPLE_EPISODE as EXAMPLE
from tests.support.helpers import REPO, create_key, train
from tests.support.live import live_server
from training.registry import Registry


@dataclass
class Server:
    url: str
    registry: Path
    predict_key: str  # clinic-a
    admin_key: str  # clinic-a's models:admin: promotes clinic-a's own champion
    other_key: str  # clinic-b's predict key: clinic-b has no champion of its own


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, small_cohort: Path) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("live")
    registry = root / "models"
    shutil.copytree(REPO / "models", registry)
    assert train(small_cohort, registry, "--seed", "11") == 0
    database = f"sqlite:///{root / 'service.db'}"
    predict_key = create_key(database, "clinic-a", ["predict"])
    admin_key = create_key(database, "clinic-a", ["models:admin"])
    other_key = create_key(database, "clinic-b", ["predict"])
    with live_server(root, database, registry, 2, DROPOUT_RISK_RELOAD_SECONDS="0.5") as url:
        yield Server(url, registry, predict_key, admin_key, other_key)


def test_promotion_under_load(server: Server) -> None:
    """Clinic A's champion changes while clinics A and B stream requests at both workers:
    every A request answered after the change settles is scored by the new model, every
    B request by the network default throughout, and no request fails."""
    old = Registry(server.registry).read()["champion"]
    new = Registry(server.registry).read()["versions"][-1]["version"]
    assert old != new
    answers: dict[str, list[tuple[float, int, str]]] = {"a": [], "b": []}
    stop = threading.Event()

    def load(clinic: str, key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
            for _ in range(3000):
                if stop.is_set():
                    return
                started = time.monotonic()
                response = http.post("/v1/predictions", json=EXAMPLE)
                version = response.json()["model"]["version"] if response.is_success else ""
                answers[clinic].append((started, response.status_code, version))

    threads = [
        threading.Thread(target=load, args=(clinic, key))
        for clinic, key in [("a", server.predict_key), ("b", server.other_key)] * 2
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    promoted = httpx.post(
        f"{server.url}/v1/models/{new}/promote",
        json={"force": True, "reason": "test: promotion under load"},  # no comparison
        timeout=10,
        headers={"Authorization": f"Bearer {server.admin_key}"},
    )
    promoted_at = time.monotonic()
    time.sleep(3.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert promoted.status_code == 200
    a, b = answers["a"], answers["b"]
    assert min(len(a), len(b)) > 50
    assert {status for _, status, _ in a + b} == {200}
    assert {version for _, _, version in a} <= {old, new}
    assert old in {v for t, _, v in a if t < promoted_at}
    settled = [v for t, _, v in a if t > promoted_at + 1.5]
    assert settled
    assert set(settled) == {new}
    assert {version for _, _, version in b} == {old}  # clinic B never changes
    index = Registry(server.registry).index()
    assert (index.champion, index.clinic_champions) == (old, {"clinic-a": new})


def test_metrics_merge_workers(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.predict_key}"}
    for _ in range(10):
        assert (
            httpx.post(f"{server.url}/v1/predictions", json=EXAMPLE, headers=headers).status_code
            == 200
        )
    text = httpx.get(f"{server.url}/metrics").text
    assert 'dropout_risk_http_requests_total{method="POST",route="/v1/predictions"' in text
    assert "A-1001" not in text


def _metric_lines(url: str, route: str) -> list[str]:
    text = httpx.get(f"{url}/metrics").text
    prefix = f'dropout_risk_http_requests_total{{method="POST",route="{route}"'
    return [line for line in text.splitlines() if line.startswith(prefix)]


def _raw(url: str, head: bytes, body: bytes = b"") -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head + body)
    return sock


def test_a_client_leaving_mid_body_is_not_a_server_error(server: Server) -> None:
    body = json.dumps(EXAMPLE).encode()
    head = (
        f"POST /v1/predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.predict_key}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    for _ in range(3):  # some reach each worker
        _raw(server.url, head, body[: len(body) // 2]).close()
    counted: list[str] = []
    for _ in range(50):  # bounded: 5 s for the workers to notice the closed connections
        counted = [line for line in _metric_lines(server.url, "/v1/predictions") if "499" in line]
        if counted and float(counted[0].rsplit(" ", 1)[1]) >= 3:
            break
        time.sleep(0.1)
    assert counted == [
        'dropout_risk_http_requests_total{method="POST",route="/v1/predictions",status="499"} 3.0'
    ]
    assert not [line for line in _metric_lines(server.url, "/v1/predictions") if '"500"' in line]


def test_an_oversize_header_is_refused_and_normal_requests_work(server: Server) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    with _raw(server.url, b"") as sock:
        sock.sendall(head[:70_000])  # past the limit: the server answers without the rest
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert answer.endswith(b"\r\n\r\nthe request line and headers are too long")
    headers = {"Authorization": f"Bearer {server.predict_key}", "X-Fill": "b" * 60_000}
    near_limit = httpx.post(f"{server.url}/v1/predictions", json=EXAMPLE, headers=headers)
    assert near_limit.status_code == 200
    assert near_limit.json()["client_id"] == EXAMPLE["client_id"]
