"""service.core.prediction: the typed answer reads and writes the JSON answers have always
had, byte for byte, and a missing risk is a value."""

from __future__ import annotations

import dataclasses
import json

import pytest
from pydantic import ValidationError

from service.core.examples import EXAMPLE_EPISODE
from service.core.prediction import NotAtLandmark, Prediction
from service.core.schemas import EpisodeIn, PredictionOut
from service.scoring.score import score
from tests.support.helpers import REPO
from training.explanation.actions import Action
from training.explanation.groups import Factor
from training.registry import LoadedModel, Registry

# The order of an answer's fields, as the API has sent them and the database stored them
# since the first stored risk (the standing came later, after the disclaimer).
ORDER = [
    "client_id",
    "probability",
    "risk_level",
    "landmark_session",
    "model",
    "thresholds",
    "disclaimer",
    "calibration",
    "locally_updated_on",
    "factors",
    "suggested_actions",
]

# An answer as the API sent it (JSON text): typed and back, it must come out the same bytes.
SENT = (
    b'{"client_id":"A-1001","probability":0.4474,"risk_level":"high","landmark_session":2,'
    b'"model":{"version":"20261122-68131565","sha256":"' + b"ab" * 32 + b'"},'
    b'"thresholds":{"moderate":0.2,"high":0.3},'
    b'"disclaimer":"Decision support, not a diagnosis.",'
    b'"calibration":"local","locally_updated_on":"2026-11-30",'
    b'"factors":[{"code":"alliance_decline","label":"Alliance fell from session 1 to 2 '
    b'(WAI-SR 3.5 \xe2\x86\x92 3)","direction":"raises","contribution":0.081},'
    b'{"code":"age","label":"Older client (age 52)","direction":"lowers","contribution":-0.012}],'
    b'"suggested_actions":[{"code":"rupture_repair","text":"Check in openly.",'
    b'"source":"Safran & Muran (rupture repair)"}]}'
)


@pytest.fixture(scope="module")
def shipped() -> LoadedModel:
    return Registry(REPO / "models").load()


def test_json_to_typed_to_json_is_byte_identical() -> None:
    answer = Prediction.from_json(SENT)
    assert answer.to_json() == SENT
    assert Prediction.from_json(json.loads(SENT)) == answer  # the JSON column's value
    assert json.loads(SENT) == answer.json_value()
    assert list(answer.json_value()) == ORDER
    assert answer.factors[0] == Factor(
        "alliance_decline", "Alliance fell from session 1 to 2 (WAI-SR 3.5 → 3)", "raises", 0.081
    )
    assert answer.suggested_actions == (
        Action("rupture_repair", "Check in openly.", "Safran & Muran (rupture repair)"),
    )
    assert (answer.model.version, answer.thresholds.high) == ("20261122-68131565", 0.3)


def test_a_scored_answer_round_trips_and_fits_the_declared_schema(shipped: LoadedModel) -> None:
    (answer,) = score(shipped, [EpisodeIn.model_validate(EXAMPLE_EPISODE)], None, "clinic-a")
    assert isinstance(answer, Prediction)
    text = answer.to_json()
    assert Prediction.from_json(text) == answer
    assert Prediction.from_json(text).to_json() == text
    assert list(json.loads(text)) == ORDER
    assert PredictionOut.model_validate_json(text).model_dump(mode="json") == {
        key: json.loads(text)[key] for key in PredictionOut.model_fields
    }
    assert answer.factors  # a real answer, with factors and actions
    assert answer.suggested_actions


def test_the_typed_answer_is_immutable() -> None:
    answer = Prediction.from_json(SENT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        answer.probability = 0.1  # type: ignore[misc]
    assert isinstance(answer.factors, tuple)


@pytest.mark.parametrize(
    ("field", "value"),
    [("risk_level", "severe"), ("landmark_session", "two"), ("model", None)],
)
def test_a_body_that_is_not_an_answer_is_refused_by_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Prediction.from_json({**json.loads(SENT), field: value})
    assert [e["loc"][0] for e in caught.value.errors()] == [field]


def test_not_at_landmark_is_an_immutable_value_not_an_exception(shipped: LoadedModel) -> None:
    early = EpisodeIn.model_validate(
        {"client_id": "early", "sessions": [{"number": 1, "srs": {"total": 33.0}}]}
    )
    meta = {**shipped.metadata, "landmarks": [2, 3]}
    later = LoadedModel(shipped.model, meta, shipped.probability)
    first, second = score(later, [early, early])
    assert isinstance(first, NotAtLandmark)
    assert not isinstance(first, BaseException)
    assert (
        first
        == second
        == NotAtLandmark(
            "the episode has not reached session 2, the first landmark; no risk can be computed yet"
        )
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.reason = "changed"  # type: ignore[misc]
    assert second.reason.startswith("the episode has not reached session 2")
