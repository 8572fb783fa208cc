"""The model every request uses, and how a promotion reaches every worker.

Workers are separate processes, so a promotion is written to the registry file and each
worker notices the change on its own: before handling a request it looks at the file's
stat at most every `reload_seconds`, and when the champion changed it loads and verifies
the new version, then swaps one reference. A request keeps the model object it started
with. A version that fails its integrity check, and a registry file that does not match its
schema, are refused and the old model keeps serving; a worker that has none yet stays
not-ready and tries again at the next look, so fixing the file brings it up without a
restart.

A model is warmed (`warm`: service.warmup scores a reference episode through the real
scoring code, compiling or loading its kernels) before it is swapped in, so the store is
ready only when a prediction would be answered at full speed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from training.errors import DropoutRiskError
from training.registry import LoadedModel, Registry

log = logging.getLogger("dropout_risk.models")


class ModelUnavailable(DropoutRiskError):
    """No verified model is loaded (yet); the service cannot score."""


@dataclass
class _Seen:
    stat: tuple[int, int, int] | None
    checked_at: float


class ModelStore:
    def __init__(
        self,
        registry: Registry,
        reload_seconds: float,
        warm: Callable[[LoadedModel], None] = lambda model: None,
    ) -> None:
        self.registry = registry
        self.reload_seconds = reload_seconds
        self.warm = warm
        self._model: LoadedModel | None = None
        self._seen = _Seen(None, 0.0)
        self.last_error: str | None = None

    @property
    def current(self) -> LoadedModel:
        self.refresh()
        if self._model is None:
            raise ModelUnavailable(self.last_error or "no model is loaded")
        return self._model

    @property
    def ready(self) -> bool:
        return self._model is not None

    def _registry_stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.registry.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def refresh(self, force: bool = False) -> None:
        """Load the champion if the registry changed since we last looked."""
        now = time.monotonic()
        if not force and now - self._seen.checked_at < self.reload_seconds:
            return
        stat = self._registry_stat()
        changed = stat != self._seen.stat
        self._seen = _Seen(stat, now)
        if changed or self._model is None:
            self._load_champion()

    def _load_champion(self) -> None:
        try:
            champion = self.registry.entry("champion").version
            if self._model is not None and self._model.version == champion:
                return
            model = self.registry.load(champion)
            self.warm(model)
        except DropoutRiskError as exc:
            self.last_error = str(exc)
            log.error("model not loaded, keeping the previous one: %s", exc)
            return
        previous = None if self._model is None else self._model.version
        self._model, self.last_error = model, None
        log.info("serving model %s (previous: %s)", model.version, previous)

    def promote(self, version: str) -> str | None:
        """Verify and promote a version, then serve it here at once; returns the previous."""
        previous = None if self._model is None else self._model.version
        # A version that cannot score the reference episode is refused (WarmUpFailed, an
        # ArtifactError) before it is named champion, which every worker would then refuse.
        self.warm(self.registry.load(version))
        self.registry.promote(version)  # loads and verifies before writing the registry
        self.refresh(force=True)
        return previous
