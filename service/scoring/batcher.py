"""Micro-batching of single predictions, when there are concurrent ones to batch.

Scoring one client is a few compiled calls and a little Python whose fixed cost dominates;
scoring twenty costs little more. Requests that are ready to run at the same moment are
scored together: the first one to arrive leads. It yields to the event loop once, so that
the requests already waiting to run reach the batcher and join it, then scores itself and
everyone who joined in one call and hands each follower its answer. There is no waiting
window (docs/performance.md: a 2 ms window tripled p50; draining what is queued kept it and
raised throughput 2.7x at 32 connections).

Yielding is not free: resuming a request's stack of coroutines costs about a tenth of a
one-client prediction (bench/api.py). So a batcher only leads batches while its batches
find followers. Once a batch comes back alone, requests are scored inline until a probe
(every `probe_every`-th request still leads a batch) finds company again. Under load the
first probe switches batching back on; a lone client's requests are scored at once, and
only the probes pay the yield.
"""

from __future__ import annotations

import asyncio

from service.core.prediction import NotAtLandmark, Prediction
from service.core.schemas import EpisodeIn
from service.scoring.score import score
from training.registry import LoadedModel

Result = Prediction | NotAtLandmark
_Item = tuple[LoadedModel, str | None, EpisodeIn, "asyncio.Future[Result]"]  # model, clinic


class MicroBatcher:
    def __init__(self, max_landmark: int | None, limit: int = 256, probe_every: int = 8) -> None:
        self.max_landmark = max_landmark
        self.limit = limit  # clients per scoring call
        self.probe_every = probe_every
        self.batching = True  # whether the last batch found followers
        self._joining: list[_Item] | None = None  # the open batch, while its leader yields
        self._inline = 0  # requests scored inline since the last probe

    async def score(self, model: LoadedModel, episode: EpisodeIn, clinic: str | None) -> Result:
        if self._joining is None and not self.batching and self._inline < self.probe_every - 1:
            self._inline += 1
            return score(model, [episode], self.max_landmark, clinic)[0]
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        if self._joining is not None:  # a leader is about to score: join its batch
            self._joining.append((model, clinic, episode, future))
            return await future
        self._inline = 0
        batch: list[_Item] = [(model, clinic, episode, future)]
        self._joining = batch
        try:
            await asyncio.sleep(0)  # the requests ready to run now join behind this one
        finally:
            self._joining = None
            self.batching = len(batch) > 1
            # scored even if this request was cancelled meanwhile: the others still wait
            self._score(batch)
        return future.result()  # answered above, without another pass of the loop

    def _score(self, batch: list[_Item]) -> None:
        groups: dict[tuple[LoadedModel, str | None], list[_Item]] = {}
        for item in batch:  # a promotion mid-batch: each request keeps its own model
            groups.setdefault((item[0], item[1]), []).append(item)
        for (model, clinic), items in groups.items():
            for start in range(0, len(items), self.limit):
                part = items[start : start + self.limit]
                try:
                    results = score(model, [e for _, _, e, _ in part], self.max_landmark, clinic)
                except Exception as exc:  # handed to every request of the part
                    for *_, future in part:
                        if not future.done():  # done: that request was cancelled
                            future.set_exception(exc)
                    continue
                for (*_, future), result in zip(part, results, strict=True):
                    if not future.done():
                        future.set_result(result)
