"""Micro-batching: concurrent requests are scored together and each gets its own answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from service.core.examples import EXAMPLE_EPISODE as EXAMPLE
from service.core.schemas import EpisodeIn
from service.scoring import batcher as batcher_module
from service.scoring.batcher import MicroBatcher
from service.scoring.score import score
from tests.support.helpers import REPO
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

    def counting(m: Any, episodes: Any, cap: Any, clinic: Any = None) -> Any:
        calls.append(len(episodes))
        return score(m, episodes, cap, clinic)

    monkeypatch.setattr(batcher_module, "score", counting)
    episodes = [_episode(f"C{i}", 30.0 + i) for i in range(10)]

    async def run() -> list[Any]:
        batcher = MicroBatcher(None)
        return await asyncio.gather(*(batcher.score(model, e, None) for e in episodes))

    results = asyncio.run(run())
    assert calls == [10]
    alone = [score(model, [e])[0] for e in episodes]
    assert results == alone
    assert [r.client_id for r in results] == [f"C{i}" for i in range(10)]


def test_a_failure_reaches_every_waiting_request(monkeypatch: pytest.MonkeyPatch) -> None:
    model = Registry(REPO / "models").load()

    def broken(*_: Any) -> Any:
        raise RuntimeError("scoring failed")

    monkeypatch.setattr(batcher_module, "score", broken)

    async def run() -> list[Any]:
        batcher = MicroBatcher(None)
        return await asyncio.gather(
            *(batcher.score(model, _episode("C", 33.0), None) for _ in range(3)),
            return_exceptions=True,
        )

    outcomes = asyncio.run(run())
    assert [str(o) for o in outcomes] == ["scoring failed"] * 3


def test_each_clinic_of_a_batch_is_answered_as_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests of two clinics that join one batch are scored apart, each answer with the
    standing of its own clinic (the shipped model was updated on no clinic's data)."""
    model = Registry(REPO / "models").load()
    calls = _scored_calls(monkeypatch)
    episodes = [_episode(f"C{i}", 30.0 + i) for i in range(4)]
    clinics = ["x", "y", "x", "y"]

    async def run() -> list[Any]:
        batcher = MicroBatcher(None)
        return await asyncio.gather(
            *(batcher.score(model, e, c) for e, c in zip(episodes, clinics, strict=True))
        )

    results = asyncio.run(run())
    assert sorted(calls) == [2, 2]
    assert [r.client_id for r in results] == ["C0", "C1", "C2", "C3"]
    assert {r.calibration for r in results} == {"network-default"}
    pairs = zip(episodes, clinics, strict=True)
    assert results == [score(model, [e], None, c)[0] for e, c in pairs]


def _scored_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each scoring call the batcher makes (inline calls included)."""
    calls: list[int] = []

    def counting(m: Any, episodes: Any, cap: Any, clinic: Any = None) -> Any:
        calls.append(len(episodes))
        return score(m, episodes, cap, clinic)

    monkeypatch.setattr(batcher_module, "score", counting)
    return calls


def test_a_lone_client_is_scored_inline_but_for_the_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    model = Registry(REPO / "models").load()
    calls = _scored_calls(monkeypatch)
    led: list[int] = []
    batcher = MicroBatcher(None, probe_every=8)
    lead = batcher._score

    def leading(batch: Any) -> None:
        led.append(len(calls) + 1)  # the number of the request that led this batch
        lead(batch)

    monkeypatch.setattr(batcher, "_score", leading)
    episodes = [_episode(f"C{i}", 30.0 + i % 9) for i in range(17)]

    async def one_at_a_time() -> list[Any]:
        return [await batcher.score(model, e, None) for e in episodes]

    results = asyncio.run(one_at_a_time())
    assert led == [1, 9, 17]  # the first request, then every eighth: a probe for company
    assert calls == [1] * 17
    assert batcher.batching is False
    assert results == [score(model, [e])[0] for e in episodes]


def test_concurrency_after_a_quiet_spell_turns_batching_back_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = Registry(REPO / "models").load()
    calls = _scored_calls(monkeypatch)
    batcher = MicroBatcher(None, probe_every=4)
    episodes = [_episode(f"C{i}", 30.0 + i % 9) for i in range(20)]

    async def run() -> tuple[list[Any], list[Any]]:
        await batcher.score(model, episodes[0], None)  # alone: batching goes off
        assert batcher.batching is False
        burst = await asyncio.gather(*(batcher.score(model, e, None) for e in episodes))
        again = await asyncio.gather(*(batcher.score(model, e, None) for e in episodes[:10]))
        return burst, again

    burst, again = asyncio.run(run())
    # the burst: three inline, then a probe leads and the other sixteen join it
    assert calls[:5] == [1, 1, 1, 1, 17]
    assert batcher.batching is True
    assert calls[5:] == [10]  # batching stays on while batches find company
    assert burst == [score(model, [e])[0] for e in episodes]
    assert again == burst[:10]
