"""The real server (`dropout-risk serve`, 2 uvicorn workers) on a loopback port: promotion
while a load of requests runs, and metrics merged across workers. Loops are bounded."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, create_key, train
from tests.live import live_server
from tests.test_api import EXAMPLE
from training.registry import Registry


@dataclass
class Server:
    url: str
    registry: Path
    predict_key: str
    admin_key: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, small_cohort: Path) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("live")
    registry = root / "models"
    shutil.copytree(REPO / "models", registry)
    assert train(small_cohort, registry, "--seed", "11") == 0
    database = f"sqlite:///{root / 'service.db'}"
    predict_key = create_key(database, "clinic-a", ["predict"])
    admin_key = create_key(database, "clinic-a", ["models:network"])
    with live_server(root, database, registry, 2, DROPOUT_RISK_RELOAD_SECONDS="0.5") as url:
        yield Server(url, registry, predict_key, admin_key)


def test_promotion_under_load(server: Server) -> None:
    old = Registry(server.registry).read()["champion"]
    new = Registry(server.registry).read()["versions"][-1]["version"]
    assert old != new
    answers: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def load() -> None:
        headers = {"Authorization": f"Bearer {server.predict_key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
            for _ in range(3000):
                if stop.is_set():
                    return
                started = time.monotonic()
                response = http.post("/v1/predictions", json=EXAMPLE)
                version = response.json()["model"]["version"] if response.is_success else ""
                answers.append((started, response.status_code, version))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    promoted = httpx.post(
        f"{server.url}/v1/models/{new}/promote",
        timeout=10,
        headers={"Authorization": f"Bearer {server.admin_key}"},
    )
    promoted_at = time.monotonic()
    time.sleep(3.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert promoted.status_code == 200
    assert len(answers) > 100
    assert {status for _, status, _ in answers} == {200}
    assert {version for _, _, version in answers} <= {old, new}
    assert old in {v for t, _, v in answers if t < promoted_at}
    settled = [v for t, _, v in answers if t > promoted_at + 1.5]
    assert settled
    assert set(settled) == {new}


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
