"""Versioned, hash-checked model artifacts and the registry that names the champion.

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
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import joblib
import sklearn
from sklearn.exceptions import InconsistentVersionWarning

from training.artifact_schema import ModelMetadata, RegistryEntry, RegistryFile, parse_document
from training.errors import ArtifactError, RegistryError, RegistryInvalid
from training.model import Predictor, predictor

REGISTRY_FILE = "registry.json"
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


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


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

    def entry(self, version: str) -> RegistryEntry:
        index = self.index()
        if version == CHAMPION:
            version = index.champion or ""
            if not version:
                raise RegistryError(
                    "no champion model is registered; train one with `dropout-risk train`"
                )
        for item in index.versions:
            if item.version == version:
                return item
        known = ", ".join(v.version for v in index.versions) or "none"
        raise RegistryError(f"model version {version!r} is not registered (registered: {known})")

    def register(self, staged: Path, metadata: dict[str, Any], promote: bool) -> bool:
        """Move a staged version folder into place and list it; returns True if champion.

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
                "auc": metadata["metrics"]["overall"]["auc"]["estimate"],
            }
            index.versions.append(RegistryEntry.model_validate(entry))
        champion = promote or not index.champion
        if champion:
            index.champion = version
        _write_json_atomic(self.path, index.model_dump(mode="json"))
        return champion

    def promote(self, version: str) -> None:
        """Make a registered, intact version the champion."""
        self.load(version)
        index = self.index()
        index.champion = self.entry(version).version
        _write_json_atomic(self.path, index.model_dump(mode="json"))

    def load(self, version: str = CHAMPION) -> LoadedModel:
        """Load a registered version after checking its hashes, its metadata's schema and
        its scikit-learn version."""
        entry = self.entry(version)
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
