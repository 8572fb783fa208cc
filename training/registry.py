"""Versioned, hash-checked model artifacts and the registry that names the champions.

The registry names a network default champion and, optionally, a champion per clinic
(tenant id); a clinic without its own is served the network default (`champion_of`).
Every change of a champion is appended to the registry's history (when, who, by which
path). Whether a challenger may become a champion at all is the promotion rule's call
(training/promotion.py); `promote` here only verifies and records.

joblib files are pickles and can run arbitrary code when loaded, so nothing is loaded that
the registry does not list, and the file's SHA-256 must match the registry's record
(compared in constant time) before joblib ever opens it. A model pickled by another
scikit-learn version is refused too: its behaviour is not guaranteed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import joblib
import sklearn
from sklearn.exceptions import InconsistentVersionWarning

from training.artifact_schema import (
    ComparisonRecord,
    HistoryEvent,
    ModelMetadata,
    RegistryEntry,
    RegistryFile,
    parse_document,
)
from training.errors import ArtifactError, RegistryError, RegistryInvalid
from training.figures import figures_from_json
from training.model import Predictor, predictor
from training.vocabulary import ID_RULE, is_id

REGISTRY_FILE = "registry.json"
COMPARISONS_DIR = "comparisons"  # the kept copies of comparison pages (record_comparison)
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
CHAMPION = "champion"


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A verified model, its metadata, and the fastest exact way to score with it.

    Compared and hashed by identity (eq=False): two loads of one artifact are two objects,
    and what is derived from a loaded model can be cached against it (service.scoring.score).
    `metadata` is the document as written; `meta` is the same document typed (it was
    validated when the model was loaded). `probability` gives P(drops out) per row, the
    calibrated probability (the model's `predict_proba(X)[:, 1]`, computed faster); the
    model's own `predict` gives class labels."""

    model: Any
    metadata: dict[str, Any]
    probability: Predictor

    @cached_property
    def meta(self) -> ModelMetadata:
        return ModelMetadata.model_validate(self.metadata)

    @property
    def version(self) -> str:
        return self.meta.version


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    """Written whole beside `path`, then renamed over it: a reader sees the old file or the
    new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    _write_atomic(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


# Written only when they hold something, so that a registry without clinics, comparisons
# or history is the same file it was before they existed (models/registry.json).
_OPTIONAL_KEYS = ("clinic_champions", "comparisons", "history")
_OPTIONAL_ENTRY_KEYS = ("parent", "method")


def _document(index: RegistryFile) -> dict[str, Any]:
    data = index.model_dump(mode="json")
    for key in _OPTIONAL_KEYS:
        if not data[key]:
            del data[key]
    for entry in data["versions"]:
        for key in _OPTIONAL_ENTRY_KEYS:
            if entry.get(key) is None:
                entry.pop(key, None)
    return data


def check_clinic(clinic: str | None) -> str | None:
    """A clinic (tenant) id by the project's id rule, or None for the network default."""
    if clinic is not None and not is_id(clinic):
        raise RegistryError(f"clinic: value {clinic!r} is not a clinic id ({ID_RULE})")
    return clinic


def now() -> str:
    """The time of a registry event (UTC, seconds)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class PromotionNote:
    """Who changes a champion and by which path, for the registry's history; `forced`
    with the `reason` and the refusals it `overrode` when the promotion rule was
    overridden (training/promotion.py)."""

    actor: str = "unrecorded"
    path: str = "registry"
    forced: bool = False
    reason: str | None = None
    overridden: tuple[str, ...] = field(default_factory=tuple)


class Registry:
    """The `models/` directory: one folder per version plus registry.json.

    Messages name the version and the file within the directory, never the directory's
    path on this machine: they reach API clients."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def path(self) -> Path:
        return self.root / REGISTRY_FILE

    def index(self) -> RegistryFile:
        """registry.json, checked against its schema (an absent file is an empty registry)."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return RegistryFile()
        except OSError as exc:
            raise RegistryInvalid(f"{REGISTRY_FILE}: cannot be read ({exc.strerror})") from None
        return parse_document(RegistryFile, text, REGISTRY_FILE, RegistryInvalid)

    def read(self) -> dict[str, Any]:
        """The checked registry as plain JSON data."""
        return self.index().model_dump(mode="json")

    def write(self, index: RegistryFile) -> None:
        """Replace registry.json atomically with `index`."""
        _write_json_atomic(self.path, _document(index))

    def champion_of(self, clinic: str | None = None) -> str | None:
        """The version serving `clinic`: its own champion, else the network default."""
        return self.index().champion_of(check_clinic(clinic))

    def entry(self, version: str, clinic: str | None = None) -> RegistryEntry:
        """A registered version; "champion" is the champion of `clinic` (its own, else the
        network default)."""
        index = self.index()
        if version == CHAMPION:
            version = index.champion_of(check_clinic(clinic)) or ""
            if not version:
                raise RegistryError(
                    "no champion model is registered; train one with `dropout-risk train`"
                )
        for item in index.versions:
            if item.version == version:
                return item
        known = ", ".join(v.version for v in index.versions) or "none"
        raise RegistryError(f"model version {version!r} is not registered (registered: {known})")

    def register(
        self,
        staged: Path,
        metadata: dict[str, Any],
        promote: bool,
        note: PromotionNote | None = None,
        first_champion: bool = True,
    ) -> bool:
        """Move a staged version folder into place and list it; returns True if champion.

        `promote` makes it the network default (train --promote, the network bootstrap
        path: recorded in the history with `note` when it replaces another champion); the
        first version of an empty registry becomes the champion unless `first_champion`
        is False (a local update is never promoted by registering it).

        The folder is complete before it is renamed into place and the registry is rewritten
        atomically, so an interrupted run leaves no half-registered version.
        """
        index = self.index()
        version = metadata["version"]
        target = self.root / version
        if any(v.version == version for v in index.versions):
            shutil.rmtree(staged)
        else:
            if target.exists():
                shutil.rmtree(target)
            staged.rename(target)
            entry = {
                "version": version,
                "created_at": metadata["created_at"],
                "sha256": metadata["sha256"],
                "metadata_sha256": sha256_of(target / METADATA_FILE),
                "estimator": metadata["estimator"],
                "auc": figures_from_json(metadata["metrics"]).overall.auc.estimate,
            }
            lineage = metadata.get("lineage") or {}
            entry |= {k: lineage[k] for k in ("parent", "method") if lineage.get(k)}
            index.versions.append(RegistryEntry.model_validate(entry))
        champion = promote or (first_champion and not index.champion)
        if champion:
            self._set_champion(index, version, None, note or PromotionNote(path="register"))
        self.write(index)
        return champion

    def promote(
        self, version: str, clinic: str | None = None, note: PromotionNote | None = None
    ) -> str | None:
        """Make a registered, intact version the champion of `clinic` (None: the network
        default) and record the change; returns the version that served it before. The
        promotion rule is not checked here: training.promotion.promote checks it first."""
        self.load(version)
        index = self.index()
        previous = index.champion_of(check_clinic(clinic))
        self._set_champion(index, self.entry(version).version, clinic, note or PromotionNote())
        self.write(index)
        return previous

    @staticmethod
    def _set_champion(
        index: RegistryFile, version: str, clinic: str | None, note: PromotionNote
    ) -> None:
        """Name `version` the champion of `clinic`, with a history event when that changes
        anything (the first champion of an empty registry has none: nothing served before)."""
        own_before = index.champion if clinic is None else index.clinic_champions.get(clinic)
        previous = index.champion_of(clinic)
        if clinic is None:
            index.champion = version
        else:
            index.clinic_champions[clinic] = version
        if own_before == version or previous is None:
            return
        index.history.append(
            HistoryEvent(
                at=now(),
                version=version,
                clinic=clinic,
                previous=previous,
                actor=note.actor,
                path=note.path,
                forced=note.forced,
                reason=note.reason,
                overridden=list(note.overridden),
            )
        )

    def comparison_page_path(self, record: ComparisonRecord) -> Path:
        """Where the registry keeps a comparison's page: comparisons/<clinic or network>-
        <challenger>.html, a name built from the record's validated ids (never read from
        the file), one per challenger and scope, as the record is."""
        return (
            self.root / COMPARISONS_DIR / f"{record.clinic or 'network'}-{record.challenger}.html"
        )

    def record_comparison(self, record: ComparisonRecord, page: str | None = None) -> None:
        """Keep `record` as the challenger's last comparison (replacing any earlier one),
        and a copy of its `page` (written whole, then renamed; its sha256 in the record, so
        that serving it checks it: comparison_page)."""
        if page is not None:
            path = self.comparison_page_path(record)
            path.parent.mkdir(exist_ok=True)
            data = page.encode()
            _write_atomic(path, data)
            record = record.model_copy(update={"page_sha256": hashlib.sha256(data).hexdigest()})
        index = self.index()
        index.comparisons = [c for c in index.comparisons if c.challenger != record.challenger]
        index.comparisons.append(record)
        self.write(index)

    def load(self, version: str = CHAMPION, clinic: str | None = None) -> LoadedModel:
        """Load a registered version ("champion": the champion of `clinic`, else the network
        default) after checking its hashes, its metadata's schema and its scikit-learn
        version."""
        entry = self.entry(version, clinic)
        folder = self.root / entry.version
        model_path, meta_path = folder / MODEL_FILE, folder / METADATA_FILE
        for needed in (model_path, meta_path):
            if not needed.is_file():
                raise ArtifactError(f"model {entry.version}: {needed.name} is missing")
        _verify(entry.version, model_path, entry.sha256)
        _verify(entry.version, meta_path, entry.metadata_sha256)
        text = meta_path.read_bytes()
        meta = parse_document(
            ModelMetadata, text, f"model {entry.version}: {METADATA_FILE}", ArtifactError
        )
        _check_sklearn_version(entry.version, meta.sklearn_version)
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            try:
                model = joblib.load(model_path)
            except InconsistentVersionWarning as exc:
                raise ArtifactError(f"model {entry.version}: {exc}") from exc
        loaded = LoadedModel(model=model, metadata=json.loads(text), probability=predictor(model))
        loaded.__dict__["meta"] = meta  # the typed document, validated once above
        return loaded


def comparison_page(registry: Registry, record: ComparisonRecord) -> bytes | None:
    """The kept page of `record` after checking it against the record's sha256; None when
    no copy was kept. ArtifactError when the file is missing or altered."""
    if record.page_sha256 is None:
        return None
    path = registry.comparison_page_path(record)
    if not path.is_file():
        raise ArtifactError(f"comparison page {path.name} is missing from {COMPARISONS_DIR}/")
    data = path.read_bytes()
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), record.page_sha256):
        raise ArtifactError(
            f"comparison page {path.name} does not match the sha256 recorded in {REGISTRY_FILE}"
        )
    return data


def _verify(version: str, path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if not hmac.compare_digest(actual, expected):
        raise ArtifactError(
            f"model {version}: {path.name} does not match the sha256 recorded in {REGISTRY_FILE} "
            f"(expected {expected}, found {actual}); refusing to load a modified artifact"
        )


def _check_sklearn_version(version: str, trained_with: str) -> None:
    if trained_with != sklearn.__version__:
        raise ArtifactError(
            f"model {version} was trained with scikit-learn {trained_with} but "
            f"{sklearn.__version__} is installed; install scikit-learn=={trained_with} "
            "or retrain the model"
        )
