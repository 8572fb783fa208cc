"""The model each request uses (its clinic's champion, else the network default), and how
a promotion reaches every worker.

One model is loaded per distinct champion version: a clinic champion named by several
clinics is loaded once and shared. Which version serves which clinic is read from the
registry only when its file changes, so a request costs one dict lookup, not a read.

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

from training import promotion as rules
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
        self._model: LoadedModel | None = None  # the network default
        self._clinics: dict[str, LoadedModel] = {}  # clinics with their own champion
        self._seen = _Seen(None, 0.0)
        self.last_error: str | None = None

    @property
    def current(self) -> LoadedModel:
        """The network default champion."""
        return self.for_clinic(None)

    def for_clinic(self, clinic: str | None) -> LoadedModel:
        """The champion serving `clinic`: its own when it has one, else the network default."""
        self.refresh()
        own = self._clinics.get(clinic) if clinic is not None else None
        if own is not None:
            return own
        if self._model is None:
            raise ModelUnavailable(self.last_error or "no model is loaded")
        return self._model

    def serving_version(self, clinic: str | None) -> str | None:
        """The version serving `clinic`, or None while no model is loaded: for pages of
        stored data, which answer without a model (a caseload names its rows' models)."""
        try:
            return self.for_clinic(clinic).version
        except ModelUnavailable:
            return None

    def is_clinic_champion(self, clinic: str) -> bool:
        """Whether `clinic` is served its own champion (not the network default)."""
        self.refresh()
        return clinic in self._clinics

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
        """Load the champions if the registry changed since we last looked."""
        now = time.monotonic()
        if not force and now - self._seen.checked_at < self.reload_seconds:
            return
        stat = self._registry_stat()
        changed = stat != self._seen.stat
        self._seen = _Seen(stat, now)
        if changed or self._model is None:
            self._load_champions()

    def _loaded(self) -> dict[str, LoadedModel]:
        """Every model loaded now, by version (each version once)."""
        out = {m.version: m for m in self._clinics.values()}
        if self._model is not None:
            out[self._model.version] = self._model
        return out

    def _load(self, version: str, loaded: dict[str, LoadedModel]) -> LoadedModel | None:
        """`version` loaded, verified and warmed (or already loaded); None when refused."""
        if version in loaded:
            return loaded[version]
        try:
            model = self.registry.load(version)
            self.warm(model)
        except DropoutRiskError as exc:
            self.last_error = str(exc)
            log.error("model not loaded, keeping the previous one: %s", exc)
            return None
        loaded[version] = model
        return model

    def _load_champions(self) -> None:
        """Swap in the registry's champions. A version that cannot be loaded is refused and
        whatever served before keeps serving the clinics that named it."""
        try:
            index = self.registry.index()
        except DropoutRiskError as exc:
            self.last_error = str(exc)
            log.error("registry not read, keeping the previous models: %s", exc)
            return
        loaded = self._loaded()
        self.last_error = None
        default = self._model
        if index.champion is not None:
            default = self._load(index.champion, loaded) or default
        elif default is None:
            self.last_error = "no champion model is registered; train one with `dropout-risk train`"
        clinics: dict[str, LoadedModel] = {}
        for clinic, version in index.clinic_champions.items():
            model = self._load(version, loaded) or self._clinics.get(clinic)
            if model is not None:
                clinics[clinic] = model
        previous = None if self._model is None else self._model.version
        self._model, self._clinics = default, clinics
        if default is not None and default.version != previous:
            log.info("serving model %s (previous: %s)", default.version, previous)

    def promote(
        self,
        version: str,
        clinic: str | None = None,
        actor: str = "unrecorded",
        force: bool = False,
        reason: str | None = None,
    ) -> str | None:
        """Verify and promote a version for `clinic` (None: the network default) under the
        promotion rule (training.promotion: PromotionRefused when it does not pass and is
        not forced), then serve it here at once; returns the previous champion there."""
        previous = self.registry.champion_of(clinic)
        # A version that cannot score the reference episode is refused (WarmUpFailed, an
        # ArtifactError) before it is named champion, which every worker would then refuse.
        self.warm(self.registry.load(version))
        rules.promote(
            self.registry,
            version,
            clinic,
            actor=actor,
            path=rules.API_OVERRIDE.door,
            force=force,
            reason=reason,
            override=rules.API_OVERRIDE,
        )  # loads and verifies before it writes the registry
        self.refresh(force=True)
        return previous
