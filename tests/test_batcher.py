"""Micro-batching: concurrent requests are scored together and each gets its own answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from service import batcher as batcher_module
from service.batcher import MicroBatcher
from service.schemas import EpisodeIn
from service.scoring import score
from tests.conftest import REPO
from tests.test_api import EXAMPLE
from training.registry import Registry


def _episode(client_id: str, srs: float) -> EpisodeIn:
    return EpisodeIn.model_validate(
        {
            **EXAMPLE,
            "client_id": client_id,
            "sessions": [
                {"number": 1, "srs": {"total": srs}},
                {"number": 2, "srs": {"total": srs - 3}},
            ],
        }
    )


def test_concurrent_requests_share_one_scoring_call(monkeypatch: pytest.MonkeyPatch) -> None:
    model = Registry(REPO / "models").load()
    calls: list[int] = []

    def counting(m: Any, episodes: Any, cap: Any) -> Any:
        calls.append(len(episodes))
        return score(m, episodes, cap)

    monkeypatch.setattr(batcher_module, "score", counting)
    episodes = [_episode(f"C{i}", 30.0 + i) for i in range(10)]

    async def run() -> list[Any]:
        batcher = MicroBatcher(None)
        return await asyncio.gather(*(batcher.score(model, e) for e in episodes))

    results = asyncio.run(run())
    assert calls == [10]
    alone = [score(model, [e])[0] for e in episodes]
    assert results == alone
    assert [r["client_id"] for r in results] == [f"C{i}" for i in range(10)]


def test_a_failure_reaches_every_waiting_request(monkeypatch: pytest.MonkeyPatch) -> None:
    model = Registry(REPO / "models").load()

    def broken(*_: Any) -> Any:
        raise RuntimeError("scoring failed")

    monkeypatch.setattr(batcher_module, "score", broken)

    async def run() -> list[Any]:
        batcher = MicroBatcher(None)
        return await asyncio.gather(
            *(batcher.score(model, _episode("C", 33.0)) for _ in range(3)), return_exceptions=True
        )

    outcomes = asyncio.run(run())
    assert [str(o) for o in outcomes] == ["scoring failed"] * 3
