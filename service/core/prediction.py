"""The answer of a prediction, typed: what scoring returns, storage keeps, and the JSON API,
FHIR, CDS Hooks and the clinician view read, by attribute.

A `Prediction` is written as JSON in one way only (`to_json`, `json_value`: the fields in
their order here, which is the order answers and stored rows have always had) and read
back in one way only (`Prediction.from_json`, validated once), so a stored body reads back
as the very Prediction that was answered. A body stored before answers carried the
model's standing reads as a network default's (the standing's defaults).

An episode that has not reached the model's first landmark gets no Prediction but a
`NotAtLandmark`: a value saying why, not an exception.

Serialisation goes through one pydantic-core serializer built from the type (`_ADAPTER`):
it writes a dataclass as fast as a dict, where serialising it by inference takes three
times as long (bench/api.py holds the hot path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import TypeAdapter

from training.explanation.actions import Action
from training.explanation.groups import Factor
from training.vocabulary import RiskLevel, Thresholds

Calibration = Literal["local", "network-default"]


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """Which model answered: its registry version and the SHA-256 of its artifact."""

    version: str
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    """One client's risk, the factors behind it and the suggested actions, as answered.

    The standing (`calibration`, `locally_updated_on`): the model was updated on the
    answering clinic's own outcomes ("local", on that date), or it is the network default,
    not yet checked at this clinic (service.core.standing words it)."""

    client_id: str
    probability: float
    risk_level: RiskLevel
    landmark_session: int
    model: ModelIdentity
    thresholds: Thresholds
    disclaimer: str
    calibration: Calibration = "network-default"
    locally_updated_on: str | None = None
    factors: tuple[Factor, ...]
    suggested_actions: tuple[Action, ...]

    def to_json(self) -> bytes:
        """The answer's JSON, as the API sends it."""
        return _ADAPTER.dump_json(self)

    def json_value(self) -> dict[str, Any]:
        """The answer as a JSON value (dicts and lists), as the database stores it."""
        value: dict[str, Any] = _ADAPTER.dump_python(self, mode="json")
        return value

    @staticmethod
    def from_json(data: bytes | str | Mapping[str, Any]) -> Prediction:
        """A Prediction from its JSON (text, or the value a JSON column gives back),
        validated; pydantic.ValidationError names the field when it is not one."""
        if isinstance(data, bytes | str):
            return _ADAPTER.validate_json(data)
        return _ADAPTER.validate_python(data)


@dataclass(frozen=True, slots=True)
class NotAtLandmark:
    """The episode has not reached the model's first landmark session: no risk yet."""

    reason: str


_ADAPTER: TypeAdapter[Prediction] = TypeAdapter(Prediction)
