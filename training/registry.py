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
from pathlib import Path
from typing import Any

import joblib
import sklearn
from sklearn.exceptions import InconsistentVersionWarning

from training.errors import ArtifactError, RegistryError
from training.model import Predictor, predictor

REGISTRY_FILE = "registry.json"
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
CHAMPION = "champion"


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A verified model, its metadata, and the fastest exact way to score with it.

    Compared and hashed by identity (eq=False): two loads of one artifact are two objects,
    and what is derived from a loaded model can be cached against it (service.scoring)."""

    model: Any
    metadata: dict[str, Any]
    predict: Predictor

    @property
    def version(self) -> str:
        return str(self.metadata["version"])


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
    """The `models/` directory: one folder per version plus registry.json."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def path(self) -> Path:
        return self.root / REGISTRY_FILE

    def read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"champion": None, "versions": []}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{self.path}: cannot read the registry ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("versions"), list):
            raise RegistryError(f"{self.path}: not a model registry (no 'versions' list)")
        return data

    def entry(self, version: str) -> dict[str, Any]:
        data = self.read()
        if version == CHAMPION:
            version = data.get("champion") or ""
            if not version:
                raise RegistryError(
                    f"{self.path}: no champion model is registered; "
                    "train one with `dropout-risk train`"
                )
        for item in data["versions"]:
            if item["version"] == version:
                return dict(item)
        known = ", ".join(v["version"] for v in data["versions"]) or "none"
        raise RegistryError(
            f"model version {version!r} is not registered in {self.path} (registered: {known})"
        )

    def register(self, staged: Path, metadata: dict[str, Any], promote: bool) -> bool:
        """Move a staged version folder into place and list it; returns True if champion.

        The folder is complete before it is renamed into place and the registry is rewritten
        atomically, so an interrupted run leaves no half-registered version.
        """
        data = self.read()
        version = metadata["version"]
        target = self.root / version
        if any(v["version"] == version for v in data["versions"]):
            shutil.rmtree(staged)
        else:
            if target.exists():
                shutil.rmtree(target)
            staged.rename(target)
            data["versions"].append(
                {
                    "version": version,
                    "created_at": metadata["created_at"],
                    "sha256": metadata["sha256"],
                    "metadata_sha256": sha256_of(target / METADATA_FILE),
                    "estimator": metadata["estimator"],
                    "auc": metadata["metrics"]["overall"]["auc"]["estimate"],
                }
            )
        champion = promote or not data.get("champion")
        if champion:
            data["champion"] = version
        _write_json_atomic(self.path, data)
        return champion

    def promote(self, version: str) -> None:
        """Make a registered, intact version the champion."""
        self.load(version)
        data = self.read()
        data["champion"] = self.entry(version)["version"]
        _write_json_atomic(self.path, data)

    def load(self, version: str = CHAMPION) -> LoadedModel:
        """Load a registered version after checking its hash and scikit-learn version."""
        entry = self.entry(version)
        folder = self.root / entry["version"]
        model_path, meta_path = folder / MODEL_FILE, folder / METADATA_FILE
        for needed in (model_path, meta_path):
            if not needed.is_file():
                raise ArtifactError(f"model {entry['version']}: {needed} is missing")
        _verify(entry["version"], model_path, str(entry["sha256"]), self.path)
        _verify(entry["version"], meta_path, str(entry.get("metadata_sha256")), self.path)
        metadata = json.loads(meta_path.read_text())
        _check_sklearn_version(entry["version"], str(metadata.get("sklearn_version")))
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            try:
                model = joblib.load(model_path)
            except InconsistentVersionWarning as exc:
                raise ArtifactError(f"model {entry['version']}: {exc}") from exc
        return LoadedModel(model=model, metadata=metadata, predict=predictor(model))


def _verify(version: str, path: Path, expected: str, registry: Path) -> None:
    actual = sha256_of(path)
    if not hmac.compare_digest(actual, expected):
        raise ArtifactError(
            f"model {version}: {path} does not match the sha256 recorded in {registry} "
            f"(expected {expected}, found {actual}); refusing to load a modified artifact"
        )


def _check_sklearn_version(version: str, trained_with: str) -> None:
    if trained_with != sklearn.__version__:
        raise ArtifactError(
            f"model {version} was trained with scikit-learn {trained_with} but "
            f"{sklearn.__version__} is installed; install scikit-learn=={trained_with} "
            "or retrain the model"
        )
