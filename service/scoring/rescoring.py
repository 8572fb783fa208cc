"""Stored risks recomputed in the background when the model serving their clinic changes.

A promotion (a clinic's own champion, or the network default for the clinics without one)
changes the model that answers new requests at once (service.scoring.model_store), but the
risks already stored were computed by the old one. The rescorer brings them over:

- **In the background**: a daemon thread per worker, never on a request's path.
- **Bounded**: `batch` clients per transaction, scored in one call, then a `pause`; on
  SQLite a transaction holds the database's write lock, so the batch bounds how long an
  API write can wait behind it.
- **Resumable**: the work left is read from the stored rows themselves (the clients whose
  latest risk is from another model than their clinic's, repository.stale_clients), so a
  restart, or another worker, simply picks up where the rows say. Each client is locked and
  checked again before it is rescored, so two workers never store the same risk twice.
- **Said, not hidden**: until it is done a caseload mixes versions, and says so (the
  caseload's `models`, and a notice in the clinician view); every row names its model.

Each rescored risk is audited as a write by `service:rescore`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from service.scoring.model_store import ModelStore, ModelUnavailable
from service.scoring.records import Actor, Auditor, rescore
from service.storage import repository as repo
from service.storage.database import Storage

log = logging.getLogger("dropout_risk.rescore")
ACTOR = "service:rescore"


@dataclass(frozen=True)
class RescoreLimits:
    batch: int = 50  # clients per transaction
    pause: float = 0.05  # seconds between batches while there is work
    idle: float = 5.0  # seconds between looks when there is none


class Rescorer:
    """Brings every clinic's stored risks to the model serving that clinic."""

    def __init__(
        self,
        storage: Storage,
        models: ModelStore,
        auditor: Auditor,
        max_landmark: int | None,
        limits: RescoreLimits = RescoreLimits(),
    ) -> None:
        self.storage = storage
        self.models = models
        self.auditor = auditor
        self.max_landmark = max_landmark
        self.limits = limits
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # clinic -> (the model of this pass, the last client id looked at in it)
        self._cursor: dict[str, tuple[str, str]] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rescore", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.step()
            except Exception as exc:  # a database hiccup must not end the thread
                log.error("rescoring paused: %s", type(exc).__name__)
                done = 0
            self._stop.wait(self.limits.pause if done else self.limits.idle)

    def step(self) -> int:
        """One bounded step: the next `batch` stale risks of the first clinic that has some,
        rescored in one transaction; returns how many were looked at (0: a full pass over
        every clinic found nothing more to do)."""
        with self.storage.session() as s:
            clinics = repo.clinic_ids(s)
        for clinic in clinics:
            seen = self._clinic_step(clinic)
            if seen:
                return seen
        return 0

    def run_until_done(self) -> int:
        """Step until a pass finds nothing more (tests, and a manual catch-up); returns how
        many risks were looked at."""
        total = 0
        while seen := self.step():
            total += seen
        return total

    def _clinic_step(self, clinic: str) -> int:
        try:
            model = self.models.for_clinic(clinic)
        except ModelUnavailable:
            return 0
        version, after = self._cursor.get(clinic, (model.version, ""))
        if version != model.version:  # the model changed again: a new pass from the start
            after = ""
        with self.storage.session() as s:
            stale = repo.stale_clients(s, clinic, model.version, after, self.limits.batch)
            if not stale:
                self._cursor.pop(clinic, None)  # this pass is over; the next starts afresh
                return 0
            records = rescore(s, clinic, stale, model, self.max_landmark)
            who = Actor(clinic=clinic, name=ACTOR)
            for record in records:
                self.auditor(s, who, "risk.rescore", record.client_id, model.version)
        # Stored risks that can no longer be computed (the new model's first landmark is
        # later) stay as they are, named by their own model; the cursor moves past them.
        self._cursor[clinic] = (model.version, stale[-1])
        return len(stale)
