"""Request and response bodies: every constraint lives here, at the edge.

Models are strict (a string is never read as a number), forbid unknown fields (a typo is
an error, not a silently ignored value) and reject non-finite numbers. Caps on list and
string lengths bound the work one request can cause (OWASP API4).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from service.core.examples import EXAMPLE_EPISODE
from service.core.prediction import ModelIdentity
from training.artifact_schema import Thresholds as ModelThresholds
from training.figures import EvaluationDocument
from training.vocabulary import (
    AGE_RANGE,
    ID_MAX_LENGTH,
    ID_PATTERN,
    ID_RULE,
    MAX_SESSIONS,
    ORS_TOTAL_RANGE,
    PHQ9_TOTAL_RANGE,
    SESSION_NUMBER_MAX,
    SRS_ITEM_RANGE,
    SRS_TOTAL_RANGE,
    TEXT_MAX_LENGTH,
    TEXT_PATTERN,
    TEXT_RULE,
    WAI_ITEM_RANGE,
    WAI_SR_ITEM_COUNT,
    RiskLevel,
    Thresholds,
    in_date_window,
    outside_date_window,
)

MAX_BATCH = 1000
MAX_PAGE_SIZE = 500  # clients per page of a caseload or risk history
MAX_OFFSET = 1_000_000


def _text_rule(
    pattern: str, kind: str, message: str, max_length: int | None = None
) -> core_schema.CustomErrorSchema:
    """A string schema checked by pydantic-core whose every error is one of ours: `kind`,
    with `message` stating the rule."""
    return core_schema.custom_error_schema(
        core_schema.str_schema(pattern=pattern, max_length=max_length),
        custom_error_type=kind,
        custom_error_message=message,
    )


@dataclass(frozen=True)
class _Text:
    """A string of one of training.vocabulary's text rules, checked by pydantic-core; the
    error states the rule, never the value (an id names a client)."""

    pattern: str
    kind: str
    rule: str
    max_length: int

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return _text_rule(self.pattern, self.kind, f"must be {self.rule}", self.max_length)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "pattern": self.pattern, "maxLength": self.max_length}


Identifier = Annotated[str, _Text(ID_PATTERN, "id_format", ID_RULE, ID_MAX_LENGTH)]
# Free text (a gender word): no control character, which PostgreSQL text could not hold
FreeText = Annotated[str, _Text(TEXT_PATTERN, "text_format", TEXT_RULE, TEXT_MAX_LENGTH)]
# The ranges are training.vocabulary's: the CSV contract, FHIR and the pages read the same.
ItemMean = Annotated[float, Field(ge=WAI_ITEM_RANGE[0], le=WAI_ITEM_RANGE[1], allow_inf_nan=False)]
SrsTotal = Annotated[
    float, Field(ge=SRS_TOTAL_RANGE[0], le=SRS_TOTAL_RANGE[1], allow_inf_nan=False)
]
SrsItem = Annotated[float, Field(ge=SRS_ITEM_RANGE[0], le=SRS_ITEM_RANGE[1], allow_inf_nan=False)]
OrsTotal = Annotated[
    float, Field(ge=ORS_TOTAL_RANGE[0], le=ORS_TOTAL_RANGE[1], allow_inf_nan=False)
]
WaiItem = Annotated[int, Field(ge=WAI_ITEM_RANGE[0], le=WAI_ITEM_RANGE[1])]
Age = Annotated[int, Field(ge=AGE_RANGE[0], le=AGE_RANGE[1])]


class _IsoDateText:
    """Only YYYY-MM-DD text is a date here: pydantic alone would also read a string of
    digits as a Unix timestamp. Checked by pydantic-core itself (a pattern, then the date),
    because a Python validator on every session costs more than the rest of its checks."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        text = _text_rule(
            r"^\d{4}-\d{2}-\d{2}$", "date_format", "must be a date written YYYY-MM-DD"
        )
        from_text = core_schema.chain_schema([text, core_schema.date_schema(strict=False)])
        return core_schema.json_or_python_schema(
            json_schema=from_text,
            # Python callers (stored rows, FHIR) may also hand over a date itself
            python_schema=core_schema.union_schema(
                [core_schema.date_schema(strict=True), from_text],
                custom_error_type="date_format",
                custom_error_message="must be a date written YYYY-MM-DD",
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "date"}


IsoDate = Annotated[dt.date, _IsoDateText]


def plausible(field: str, day: dt.date | None) -> None:
    """Refuse a date outside the plausible window (training.vocabulary), at `field`.

    Called from the model validators that already run for each session and outcome: a
    validator of its own on every date would be one more Python call per session on the
    prediction hot path (bench/api.py)."""
    if day is not None and not in_date_window(day):
        error = PydanticCustomError("date_window", outside_date_window(day))
        details = InitErrorDetails(type=error, loc=(field,), input=day.isoformat())
        raise ValidationError.from_exception_data("date", [details])


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class WaiIn(Strict):
    """WAI-SR as subscale item means (any of goal, task, bond) or as the 12 item answers."""

    goal: ItemMean | None = None
    task: ItemMean | None = None
    bond: ItemMean | None = None
    items: (
        Annotated[list[WaiItem], Field(min_length=WAI_SR_ITEM_COUNT, max_length=WAI_SR_ITEM_COUNT)]
        | None
    ) = None

    @model_validator(mode="after")
    def one_form(self) -> WaiIn:
        means = self.goal is not None or self.task is not None or self.bond is not None
        if self.items is not None and means:
            raise ValueError("give either goal/task/bond or items, not both")
        if self.items is None and not means:
            raise ValueError("give goal, task and/or bond, or the 12 items")
        return self


class SrsIn(Strict):
    """Session Rating Scale as its total (0-40) or its four 0-10 item scores."""

    total: SrsTotal | None = None
    relationship: SrsItem | None = None
    goals: SrsItem | None = None
    approach: SrsItem | None = None
    overall: SrsItem | None = None

    @model_validator(mode="after")
    def one_form(self) -> SrsIn:
        given = (
            (self.relationship is not None)
            + (self.goals is not None)
            + (self.approach is not None)
            + (self.overall is not None)
        )
        if self.total is not None and given:
            raise ValueError("give either total or the four items, not both")
        if self.total is None and given != 4:
            raise ValueError(
                "give total, or all four items: relationship, goals, approach, overall"
            )
        return self


class OrsIn(Strict):
    total: OrsTotal


class Phq9In(Strict):
    total: Annotated[int, Field(ge=PHQ9_TOTAL_RANGE[0], le=PHQ9_TOTAL_RANGE[1])]


SessionNumber = Annotated[int, Field(ge=1, le=SESSION_NUMBER_MAX)]


class _PlainDigits:
    """A path or query integer written in plain ASCII digits: no sign, space, underscore or
    leading zero ("0" itself is fine where 0 is allowed). Python's int() would also read
    " 1", "+1", "01", "1_0" (as 10) and other scripts' digits; a URL is not free text.
    Checked by pydantic-core before the integer and its range; documented as the integer."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        digits = _text_rule(
            r"^(?:0|[1-9][0-9]*)$",
            "int_plain_digits",
            "must be written in plain digits 0-9, without a sign, spaces, underscores or "
            "leading zeros",
        )
        return core_schema.chain_schema([digits, handler(source)])

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        steps: list[core_schema.CoreSchema] = schema["steps"]
        return handler(steps[-1])


# Integers taken from a URL path or query string, by every route and UI page that takes one.
SessionNumberText = Annotated[SessionNumber, _PlainDigits]
PageLimitText = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE), _PlainDigits]
PageOffsetText = Annotated[int, Field(ge=0, le=MAX_OFFSET), _PlainDigits]
PageNumberText = Annotated[int, Field(ge=1, le=MAX_OFFSET + 1), _PlainDigits]


class SessionScoresIn(Strict):
    """One session's scores: what `PUT /v1/clients/{id}/sessions/{number}` takes (the number
    is in the path) and, with its number, one element of an episode's sessions.

    Every field may be absent: an attended session without measures is still attendance.
    It counts for the landmark and, with its date, for the gaps, as a sessions.csv row
    without measures does (docs/contract.md); refusing it would move the landmark."""

    date: IsoDate | None = None
    wai: WaiIn | None = None
    srs: SrsIn | None = None
    ors: OrsIn | None = None
    phq9: Phq9In | None = None

    @model_validator(mode="after")
    def plausible_date(self) -> SessionScoresIn:
        plausible("date", self.date)
        return self


class SessionIn(SessionScoresIn):
    number: SessionNumber


class EpisodeIn(Strict):
    """One client's treatment episode: who, and the sessions so far."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        json_schema_extra={"examples": [EXAMPLE_EPISODE]},
    )

    client_id: Identifier
    age: Age | None = None
    gender: FreeText | None = None
    therapist_id: Identifier | None = None
    sessions: Annotated[list[SessionIn], Field(min_length=1, max_length=MAX_SESSIONS)]

    @field_validator("sessions")
    @classmethod
    def unique_numbers(cls, sessions: list[SessionIn]) -> list[SessionIn]:
        seen: set[int] = set()
        for session in sessions:
            if session.number in seen:
                raise ValueError(
                    f"session number {session.number} appears twice; numbers must be unique"
                )
            seen.add(session.number)
        return sessions


class BatchIn(BaseModel):
    """Up to 1,000 episodes, answered in order; a bad episode gets its own item errors
    instead of failing the batch."""

    model_config = ConfigDict(extra="forbid")

    clients: Annotated[list[EpisodeIn], Field(min_length=1, max_length=MAX_BATCH)]


class BatchItemsIn(BaseModel):
    """A batch whose episodes are still unvalidated JSON objects: how a batch that failed
    BatchIn is re-read, to validate its episodes one by one."""

    model_config = ConfigDict(extra="forbid")

    clients: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_BATCH)]


class ErrorDetail(BaseModel):
    loc: str = Field(description="field path, e.g. sessions[0].wai.goal")
    msg: str
    type: str


class ErrorOut(BaseModel):
    detail: list[ErrorDetail]


class FactorOut(BaseModel):
    code: str
    label: str
    direction: Literal["raises", "lowers"]
    contribution: float = Field(description="signed, in probability points")


class ActionOut(BaseModel):
    code: str
    text: str
    source: str


class PredictionOut(BaseModel):
    client_id: str
    probability: float
    risk_level: RiskLevel
    landmark_session: int
    # the answer's own types (frozen dataclasses; the schema reads them as they are)
    model: ModelIdentity
    thresholds: Thresholds
    factors: list[FactorOut]
    suggested_actions: list[ActionOut]
    disclaimer: str
    # the model's standing at the caller's clinic: updated on its data ("local", with the
    # date), or the network default, not yet checked at this clinic
    calibration: Literal["local", "network-default"] = "network-default"
    locally_updated_on: str | None = None


class BatchItemOut(BaseModel):
    index: int
    prediction: PredictionOut | None = None
    errors: list[ErrorDetail] | None = None


class BatchOut(BaseModel):
    results: list[BatchItemOut]


class ModelVersionOut(BaseModel):
    version: str
    created_at: str
    sha256: str
    estimator: str
    auc: float | None
    champion: bool


class ModelsOut(BaseModel):
    champion: str | None
    versions: list[ModelVersionOut]


class ModelInfoOut(BaseModel):
    """What a model's typed metadata (training.artifact_schema.ModelMetadata) shows: the
    figures and thresholds written back in metadata.json's layout."""

    version: str
    sha256: str
    created_at: str
    estimator: str
    calibration: str
    metrics: EvaluationDocument
    thresholds: ModelThresholds
    landmarks: list[int]
    instruments: list[str]
    features: list[str]


class PromoteIn(BaseModel):
    """An optional promotion body: override the promotion rule, saying why (recorded)."""

    model_config = ConfigDict(extra="forbid")

    force: StrictBool = False
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None


class PromotedOut(BaseModel):
    champion: str
    previous: str | None


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready"]
    model_version: str


# --- stored caseloads (EHR integration) ----------------------------------------------------

Level = RiskLevel


class ClientIn(Strict):
    """Demographics and therapist, as `PUT /v1/clients/{client_id}` stores them."""

    age: Age | None = None
    gender: FreeText | None = None
    therapist_id: Identifier | None = None


class ClientOut(BaseModel):
    client_id: str
    status: Literal["created", "updated", "unchanged"]


class SessionStoredOut(BaseModel):
    client_id: str
    number: int
    status: Literal["created", "updated", "unchanged"]
    risk: PredictionOut | None = Field(
        description="the client's risk after this session; null before the first landmark"
    )


class OutcomeIn(Strict):
    """How the episode ended: the label analysts retrain on."""

    dropout: bool
    ended_on: IsoDate

    @model_validator(mode="after")
    def plausible_end(self) -> OutcomeIn:
        plausible("ended_on", self.ended_on)
        return self


class OutcomeOut(BaseModel):
    client_id: str
    status: Literal["created", "updated", "unchanged"]


class StoredRiskOut(BaseModel):
    """A stored risk: the prediction as it was answered, and when and on what it was made."""

    computed_at: str
    inputs_sha256: str
    acknowledged: bool
    prediction: PredictionOut


class RiskHistoryOut(BaseModel):
    client_id: str
    history: list[StoredRiskOut]


class CaseloadItemOut(BaseModel):
    client_id: str
    therapist_id: str | None
    probability: float
    risk_level: Level
    landmark_session: int
    computed_at: str
    model_version: str
    acknowledged: bool
    last_session_date: str | None
    main_factor: str | None


class CaseloadModelsOut(BaseModel):
    """Which model serves the clinic and which computed the listed risks (service.core.
    standing.caseload_models): `recomputing` while some are from an earlier model."""

    serving: str | None  # None while no model is loaded
    versions: dict[str, int]
    recomputing: bool


class CaseloadOut(BaseModel):
    total: int
    limit: int
    offset: int
    models: CaseloadModelsOut
    clients: list[CaseloadItemOut]


class AcknowledgedOut(BaseModel):
    client_id: str
    risk_level: Level
    acknowledged_at: str
