"""Clinician view benchmark (issue 5): server time to render a caseload of 500 clients.

A demo clinic of 500 simulated clients (sessions 1-3) is seeded into a fresh SQLite file
(or the PostgreSQL database given with --database-url, whose tables are analysed first),
a clinician signs in, and `GET /ui/caseload?limit=500` is timed in-process (the ASGI app
through Starlette's test client: no network). The reference measured in the same run is
`GET /v1/caseload?limit=500`, the same rows as JSON without sessions or HTML.

Target: the 500-client caseload renders in under 300 ms server time.

Usage: .venv/bin/python bench/ui.py [--repeats 15] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from service.app import create_app
from service.commands.demo import seed_demo
from service.core.settings import Settings
from service.security.key_store import DbKeyStore
from service.storage.database import Storage
from training.registry import Registry

REPO = Path(__file__).resolve().parents[1]
CLIENTS = 500


def _timed(client: TestClient, url: str, headers: dict[str, str], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        out.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text[:200]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dropout-ui-bench-"))
    url = args.database_url or f"sqlite:///{root / 'service.db'}"
    storage = Storage(url)
    storage.ensure_migrated()
    seeded = seed_demo(storage, Registry(REPO / "models").load(), "bench", CLIENTS, 11)
    keys = DbKeyStore(storage.factory)
    login = keys.create("clinician", "bench", ["clients:read"])[1]
    api = keys.create("ehr", "bench", ["clients:read"])[1]
    if url.startswith("postgresql"):
        with storage.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    storage.close()
    settings = Settings(
        models_dir=REPO / "models",
        database_url=url,
        pseudonym_key_file=root / "p.key",
        ui_secret_file=root / "ui.key",
        log_level="warning",
    )
    with TestClient(create_app(settings)) as client:
        form = client.get("/ui/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        signed = client.post(
            "/ui/login",
            data={"access_key": login, "csrf_token": token.group(1)},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text[:300]
        page = f"/ui/caseload?limit={CLIENTS}"
        rows = client.get(page).text.count('class="caseload-row')
        auth = {"Authorization": f"Bearer {api}"}
        html = _timed(client, page, {}, args.repeats)
        ref = _timed(client, f"/v1/caseload?limit={CLIENTS}", auth, args.repeats)
    result = {
        "clients_seeded": seeded.clients,
        "rows_rendered": rows,
        "database": url.split(":", 1)[0],
        "ui_caseload_500_ms_median": round(statistics.median(html), 1),
        "ui_caseload_500_ms_max": round(max(html), 1),
        "json_caseload_500_ms_median": round(statistics.median(ref), 1),
        "ratio_to_json": round(statistics.median(html) / statistics.median(ref), 2),
        "target_ms": 300,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
