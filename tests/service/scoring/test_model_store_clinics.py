"""The model store serves each clinic its own champion, else the network default, and loads
a version once however many clinics name it."""

from __future__ import annotations

import shutil
from pathlib import Path

from service.scoring.model_store import ModelStore
from tests.support.helpers import updated_version
from training.registry import Registry


def test_each_clinic_is_served_its_champion(updated_registry: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(updated_registry, models)
    registry = Registry(models)
    default, other = registry.champion_of(None), updated_version(models)
    store = ModelStore(registry, reload_seconds=0)
    assert store.for_clinic("clinic-a").version == default
    registry.promote(other, clinic="clinic-a")
    registry.promote(other, clinic="clinic-c")
    assert store.for_clinic("clinic-a").version == other
    assert store.for_clinic("clinic-b").version == default
    assert store.for_clinic(None).version == default
    assert store.for_clinic("clinic-a") is store.for_clinic("clinic-c")  # loaded once
    assert store.is_clinic_champion("clinic-a")
    assert not store.is_clinic_champion("clinic-b")
