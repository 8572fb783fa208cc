"""Reading a Bundle of one patient's survey scores as an episode. Every resource is checked
by the fhir.resources R4B models and then by the checks they leave out (value-set bindings,
invariants, this service's codes, ranges and one patient); bad input is reported as
FhirInputError with every issue found, each naming its FHIRPath.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError
from pydantic_core import from_json

from service.core.body import unique_keys
from service.core.schemas import EpisodeIn
from service.interop.fhir.codes import (
    BUNDLE_TYPES,
    BY_CODING,
    CATEGORY_SYSTEM,
    MAX_ENTRIES,
    MEASURES,
    OBSERVATION_STATUSES,
    PATIENT_GENDERS,
    RESPONSE_STATUSES,
    SCORE_UNIT,
    SLOT_LABEL,
    SURVEY,
    UCUM,
    WAI_ITEMS_SLOT,
    WAI_LINK_IDS,
    FhirInputError,
    Issue,
    IssueCode,
    Measure,
    ParsedBundle,
)
from training.vocabulary import ID_REGEX, in_date_window, is_id, outside_date_window


class _Issues(list[Issue]):
    """Issues as they are found: parsing goes on after a problem, to report them all."""

    def add(self, code: IssueCode, expression: str, diagnostics: str) -> None:
        self.append(Issue("error", code, diagnostics, expression))


@dataclass(frozen=True)
class _Entry:
    index: int
    kind: str  # resourceType
    resource: dict[str, Any]
    full_url: str | None

    @property
    def at(self) -> str:
        return f"Bundle.entry[{self.index}].resource"


@dataclass(frozen=True)
class _Patient:
    at: str
    id: str
    full_url: str | None
    gender: str | None
    birth_date: dt.date | None


@dataclass(frozen=True)
class _Reading:
    """One measure on one date, from one resource."""

    at: str
    day: dt.date
    slot: str
    value: float | int | list[int]
    subject: str  # the patient id referenced
    subject_at: str
    reference: str | None  # how the RiskAssessment's basis refers to the resource


_SUPPORTED = ("Patient", "Observation", "QuestionnaireResponse")
_PATIENT_REF = re.compile(rf"Patient/({ID_REGEX})")
_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def episode_from_bundle(raw: bytes | dict[str, Any]) -> ParsedBundle:
    """One patient's episode from a Bundle (JSON bytes or the parsed object).

    Each distinct date (of effectiveDateTime or authored, as written, so in the clinic's
    local time) is one session; sessions are numbered 1..n in date order. Raises
    FhirInputError listing every problem found, never another exception."""
    doc = _document(raw)
    issues = _Issues()
    entries, cleaned = _screen_entries(doc, issues)
    _require_inputs(entries, issues)
    bad = _validate_structure(cleaned, issues)
    readable = [e for e in entries if e.index not in bad]
    patient, readings = _read_entries(readable, issues)
    patient_id = _one_patient(patient, readings, issues)
    sessions = _group_sessions(readings, issues)
    if issues or patient_id is None:
        raise FhirInputError(issues)
    episode, origins = _episode(patient_id, patient, sessions)
    _validate_episode(episode, origins, issues)
    if issues:
        raise FhirInputError(issues)
    return ParsedBundle(patient_id, episode, _basis(readings))


def _document(raw: bytes | dict[str, Any]) -> dict[str, Any]:
    """The Bundle as a JSON object, or FhirInputError: not JSON, not a Bundle, too big."""
    doc: object = raw
    if isinstance(raw, bytes | bytearray):
        try:
            unique_keys(raw)
            doc = from_json(raw, allow_inf_nan=False)
        except ValueError as exc:
            raise _one("structure", "Bundle", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _one("invalid", "Bundle", f"expected a Bundle (a JSON object), got {_kind(doc)}")
    if doc.get("resourceType") != "Bundle":
        kind = _show(doc.get("resourceType"))
        raise _one("invalid", "Bundle.resourceType", f"resourceType is {kind}; send a Bundle")
    entries = doc.get("entry")
    if isinstance(entries, list) and len(entries) > MAX_ENTRIES:
        raise _one(
            "too-costly",
            "Bundle.entry",
            f"the Bundle has {len(entries)} entries; at most {MAX_ENTRIES} are read",
        )
    return doc


def _one(code: IssueCode, expression: str, diagnostics: str) -> FhirInputError:
    return FhirInputError([Issue("error", code, diagnostics, expression)])


def _screen_entries(doc: dict[str, Any], issues: _Issues) -> tuple[list[_Entry], dict[str, Any]]:
    """The entries this service reads, and the Bundle with every other entry's resource
    taken out: the R4B models raise KeyError/TypeError (not a validation error) on an
    unknown resourceType, and an unsupported resource is reported here once."""
    raw_entries = doc.get("entry")
    if not isinstance(raw_entries, list):
        return [], doc  # absent, or not a list: the model reports the latter
    entries: list[_Entry] = []
    cleaned: list[Any] = []
    for i, entry in enumerate(raw_entries):
        found = _screen_entry(i, entry, issues)
        if found is None:
            kept = {k: v for k, v in entry.items() if k != "resource"} if _obj(entry) else {}
            cleaned.append(kept)
        else:
            entries.append(found)
            cleaned.append(entry)
    return entries, {**doc, "entry": cleaned}


def _screen_entry(i: int, entry: object, issues: _Issues) -> _Entry | None:
    at = f"Bundle.entry[{i}]"
    if not isinstance(entry, dict):
        issues.add("structure", at, f"an entry must be a JSON object, not {_kind(entry)}")
        return None
    resource = entry.get("resource")
    if not isinstance(resource, dict):
        what = "is missing" if resource is None else f"is {_kind(resource)}, not an object"
        issues.add("required", f"{at}.resource", f"the entry's resource {what}")
        return None
    kind = resource.get("resourceType")
    if kind not in _SUPPORTED:
        issues.add(
            "not-supported",
            f"{at}.resource.resourceType",
            f"resourceType {_show(kind)} is not read here; send only "
            "Patient, Observation and QuestionnaireResponse",
        )
        return None
    full_url = entry.get("fullUrl")
    return _Entry(i, str(kind), resource, full_url if isinstance(full_url, str) else None)


def _validate_structure(doc: dict[str, Any], issues: _Issues) -> set[int]:
    """Validate as an R4B Bundle; returns the indices of entries with structural errors
    (their content is not read further, the others still are)."""
    kind = doc.get("type")
    if isinstance(kind, str) and kind not in BUNDLE_TYPES:
        issues.add(
            "value", "Bundle.type", f"Bundle.type {kind!r} is not one of {_listed(BUNDLE_TYPES)}"
        )
    try:
        Bundle.model_validate(doc)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, "Bundle"))
        return {int(e["loc"][1]) for e in exc.errors() if _is_entry_loc(e["loc"])}
    except (KeyError, TypeError, AttributeError, ValueError):  # a bad nested resourceType
        issues.add("structure", "Bundle", "a nested resource has a missing or unknown resourceType")
        return set(range(len(doc.get("entry") or [])))
    return set()


def _is_entry_loc(loc: tuple[Any, ...]) -> bool:
    return len(loc) >= 2 and loc[0] == "entry" and isinstance(loc[1], int)


def _pydantic_issues(exc: ValidationError, root: str) -> list[Issue]:
    return [_pydantic_issue(err, root) for err in exc.errors()]


def _pydantic_issue(err: Any, root: str) -> Issue:
    """A pydantic error as an issue: its location as FHIRPath, its rule, its value."""
    loc = tuple(p for p in err["loc"] if p != "root")
    path = _fhirpath(root, loc)
    kind = str(err["type"])
    name = str(loc[-1]) if loc and isinstance(loc[-1], str) else path
    if kind == "extra_forbidden":
        return Issue("error", "structure", f"{name!r} is not an element here", path)
    if "missing" in kind:
        return Issue("error", "required", f"{name} is required", path)
    message = " ".join(str(err["msg"]).split())
    code: IssueCode = "structure" if kind == "json_invalid" else "value"
    return Issue("error", code, f"{name} {_show(err.get('input'))}: {message}", path)


def _fhirpath(root: str, loc: tuple[Any, ...]) -> str:
    path = root
    for part in loc:
        name = "resourceType" if part == "resource_type" else part
        path += f"[{name}]" if isinstance(name, int) else f".{name}"
    return path


def _read_entries(entries: list[_Entry], issues: _Issues) -> tuple[_Patient | None, list[_Reading]]:
    """The Patient (at most one) and every reading, in entry order."""
    patients = [_read_patient(e, issues) for e in entries if e.kind == "Patient"]
    for extra in [e for e in entries if e.kind == "Patient"][1:]:
        issues.add(
            "invalid",
            extra.at,
            "a second Patient; a Bundle holds one patient's data (at most one Patient)",
        )
    patient = patients[0] if patients else None
    patient_url = patient.full_url if patient is not None else None
    readings: list[_Reading] = []
    for entry in entries:
        found: _Reading | None = None
        if entry.kind == "Observation":
            found = _read_observation(entry, patient_url, issues)
        elif entry.kind == "QuestionnaireResponse":
            found = _read_response(entry, patient_url, issues)
        if found is not None:
            readings.append(found)
    return patient, readings


def _read_patient(entry: _Entry, issues: _Issues) -> _Patient | None:
    r, at = entry.resource, entry.at
    patient_id = r.get("id")
    if not isinstance(patient_id, str):
        issues.add("required", f"{at}.id", "Patient.id is required: it is the client id")
    gender = r.get("gender")
    if gender is not None and gender not in PATIENT_GENDERS:
        issues.add(
            "value",
            f"{at}.gender",
            f"gender {_show(gender)} is not one of {_listed(PATIENT_GENDERS)}",
        )
    birth = _birth_date(f"{at}.birthDate", r.get("birthDate"), issues)
    if not isinstance(patient_id, str):
        return None
    # "unknown" is no information: the model would otherwise read it as "other".
    known = gender if gender in PATIENT_GENDERS - {"unknown"} else None
    return _Patient(at, patient_id, entry.full_url, known, birth)


def _birth_date(at: str, value: object, issues: _Issues) -> dt.date | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _FULL_DATE.fullmatch(value):
        issues.add(
            "value",
            at,
            f"birthDate {_show(value)} is not a full date (YYYY-MM-DD), which the age "
            "needs; leave birthDate out rather than send part of it",
        )
        return None
    return _parse_date(at, value, issues)


def _parse_date(at: str, text: str, issues: _Issues) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        issues.add("value", at, f"{_show(text)} is not a calendar date")
        return None


def _read_observation(entry: _Entry, patient_url: str | None, issues: _Issues) -> _Reading | None:
    r, at = entry.resource, entry.at
    _check_status(at, r.get("status"), OBSERVATION_STATUSES, issues)
    _check_category(at, r.get("category"), issues)
    measure = _measure(at, r.get("code"), issues)
    day = _day(f"{at}.effectiveDateTime", r.get("effectiveDateTime"), issues)
    subject = _subject(at, r.get("subject"), patient_url, issues)
    value = _quantity(at, r, measure, issues) if measure is not None else None
    if measure is None or day is None or subject is None or value is None:
        return None
    reference = _reference(entry)
    return _Reading(at, day, measure.slot, value, subject, f"{at}.subject.reference", reference)


def _read_response(entry: _Entry, patient_url: str | None, issues: _Issues) -> _Reading | None:
    r, at = entry.resource, entry.at
    _check_status(at, r.get("status"), RESPONSE_STATUSES, issues)
    day = _day(f"{at}.authored", r.get("authored"), issues)
    subject = _subject(at, r.get("subject"), patient_url, issues)
    items = _wai_items(at, r.get("item"), issues)
    if day is None or subject is None or items is None:
        return None
    reference = _reference(entry)
    return _Reading(at, day, WAI_ITEMS_SLOT, items, subject, f"{at}.subject.reference", reference)


def _check_status(at: str, status: object, allowed: frozenset[str], issues: _Issues) -> None:
    if status not in allowed:
        issues.add(
            "value",
            f"{at}.status",
            f"status {_show(status)} is not read; it must be one of {_listed(allowed)}",
        )


def _check_category(at: str, category: object, issues: _Issues) -> None:
    codings = [c for cc in _list(category) for c in _list(_field(cc, "coding"))]
    if any(_coding(c) == (CATEGORY_SYSTEM, SURVEY) for c in codings):
        return
    found = ", ".join(f"{s}#{c}" for s, c in map(_coding, codings)) or "none"
    issues.add(
        "required" if category is None else "value",
        f"{at}.category",
        f"category must include {CATEGORY_SYSTEM}#{SURVEY} (found: {_cut(found, 300)})",
    )


def _measure(at: str, code: object, issues: _Issues) -> Measure | None:
    found = {BY_CODING[k] for k in map(_coding, _list(_field(code, "coding"))) if k in BY_CODING}
    if len(found) == 1:
        return found.pop()
    if found:
        issues.add("invalid", f"{at}.code", "code holds codings of two different measures")
        return None
    known = ", ".join(f"{m.system}#{m.code}" for m in MEASURES)
    issues.add("not-supported", f"{at}.code", f"code is none of the measures read: {known}")
    return None


def _quantity(at: str, r: dict[str, Any], measure: Measure, issues: _Issues) -> float | None:
    quantity = r.get("valueQuantity")
    if not isinstance(quantity, dict):
        issues.add(
            "required", f"{at}.valueQuantity", f"{measure.display}: valueQuantity is required"
        )
        return None
    unit = quantity.get("code")
    if unit is not None and (unit != SCORE_UNIT or quantity.get("system", UCUM) != UCUM):
        issues.add(
            "value",
            f"{at}.valueQuantity.code",
            f"unit {_show(unit)} is not the UCUM {SCORE_UNIT} (leave it out or send that)",
        )
    return _score(f"{at}.valueQuantity.value", quantity.get("value"), measure, issues)


def _score(at: str, value: object, measure: Measure, issues: _Issues) -> float | None:
    name = measure.display
    if value is None:
        issues.add("required", at, f"{name}: valueQuantity.value is required")
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        issues.add("value", at, f"{name}: value {_show(value)} must be a JSON number")
        return None
    if not measure.low <= value <= measure.high:
        rule = f"{measure.low:g} to {measure.high:g}"
        issues.add("value", at, f"{name}: value {_show(value)} is outside {rule}")
        return None
    if measure.integer and not float(value).is_integer():
        issues.add("value", at, f"{name}: value {_show(value)} must be a whole number")
        return None
    return int(value) if measure.integer else float(value)


def _day(at: str, value: object, issues: _Issues) -> dt.date | None:
    """The date part of a FHIR dateTime as written (no conversion to UTC: the session
    happened on the clinic's calendar day)."""
    name = at.rsplit(".", 1)[-1]
    if value is None:
        issues.add("required", at, f"{name} is required: its date makes the session")
        return None
    text = value if isinstance(value, str) else ""
    if not _FULL_DATE.fullmatch(text[:10]):
        issues.add("value", at, f"{name} {_show(value)} must give a full date (YYYY-MM-DD)")
        return None
    day = _parse_date(at, text, issues)
    if day is not None and not in_date_window(day):
        issues.add("value", at, f"{name} {outside_date_window(day)}")
        return None
    return day


def _subject(at: str, subject: object, patient_url: str | None, issues: _Issues) -> str | None:
    """The patient id a subject refers to: `Patient/<id>`, or the Patient entry's fullUrl
    (then the id is resolved later, from the Patient itself)."""
    reference = _field(subject, "reference")
    if not isinstance(reference, str):
        where = f"{at}.subject" if subject is None else f"{at}.subject.reference"
        issues.add("required", where, "subject.reference to the patient is required")
        return None
    if patient_url is not None and reference == patient_url:
        return patient_url
    match = _PATIENT_REF.fullmatch(reference)
    if match is None or not is_id(match.group(1)):
        issues.add(
            "value",
            f"{at}.subject.reference",
            f"subject {_show(reference)} must be a relative reference Patient/<id>",
        )
        return None
    return match.group(1)


def _wai_items(at: str, items: object, issues: _Issues) -> list[int] | None:
    """The 12 WAI-SR answers (linkId "1".."12", valueInteger 1-5), in item order."""
    answers: dict[str, int | None] = {}  # None: answered, but not validly
    for path, item in _walk_items(f"{at}.item", items):
        _wai_answer(path, item, answers, issues)
    missing = [link for link in WAI_LINK_IDS if link not in answers]
    if missing:
        issues.add(
            "required",
            f"{at}.item",
            f"WAI-SR item(s) {', '.join(missing)} are not answered; all 12 are needed",
        )
    values = [answers.get(link) for link in WAI_LINK_IDS]
    return None if any(v is None for v in values) else [v for v in values if v is not None]


def _walk_items(at: str, items: object) -> list[tuple[str, dict[str, Any]]]:
    """Answered items, looking inside groups (items of items)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for j, item in enumerate(_list(items)):
        if not isinstance(item, dict):
            continue
        path = f"{at}[{j}]"
        if item.get("answer") is not None:
            found.append((path, item))
        found += _walk_items(f"{path}.item", item.get("item"))
    return found


def _wai_answer(
    at: str, item: dict[str, Any], answers: dict[str, int | None], issues: _Issues
) -> None:
    link = item.get("linkId")
    if not isinstance(link, str) or link not in WAI_LINK_IDS:
        issues.add("value", f"{at}.linkId", f"linkId {_show(link)} is not a WAI-SR item (1-12)")
        return
    if link in answers:
        issues.add("invalid", f"{at}.linkId", f"WAI-SR item {link} is answered twice")
        return
    answers[link] = None
    given = _list(item.get("answer"))
    value = _field(given[0], "valueInteger") if len(given) == 1 else None
    if len(given) != 1:
        issues.add("value", f"{at}.answer", f"item {link} needs exactly one answer")
    elif not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
        issues.add(
            "value",
            f"{at}.answer[0].valueInteger",
            f"item {link}: valueInteger {_show(value)} must be a whole number from 1 to 5",
        )
    else:
        answers[link] = value


def _one_patient(patient: _Patient | None, readings: list[_Reading], issues: _Issues) -> str | None:
    """The one patient every resource is about: the Patient's id, or else the subject of
    the first reading; any other subject is an issue."""
    if patient is None and not readings:
        return None
    expected = patient.id if patient is not None else readings[0].subject
    for reading in readings:
        subject = reading.subject
        if patient is not None and subject == patient.full_url:
            continue
        if subject != expected:
            issues.add(
                "invalid",
                reading.subject_at,
                f"subject Patient/{subject} is not Patient/{expected}; "
                "a Bundle holds one patient's data",
            )
    return expected


def _require_inputs(entries: list[_Entry], issues: _Issues) -> None:
    if not any(e.kind in ("Observation", "QuestionnaireResponse") for e in entries):
        issues.add(
            "required",
            "Bundle.entry",
            "the Bundle has no Observation or QuestionnaireResponse: nothing to score",
        )


def _group_sessions(
    readings: list[_Reading], issues: _Issues
) -> list[tuple[dt.date, dict[str, _Reading]]]:
    """One session per distinct date, in date order; one value per measure and date, and
    the WAI-SR either as a questionnaire or as subscale scores, not both."""
    by_day: dict[dt.date, dict[str, _Reading]] = {}
    for reading in readings:
        slots = by_day.setdefault(reading.day, {})
        clash = slots.get(reading.slot) or _wai_clash(reading.slot, slots)
        if clash is not None:
            issues.add("invalid", reading.at, _clash_message(reading, clash))
        else:
            slots[reading.slot] = reading
    return sorted(by_day.items())


def _wai_clash(slot: str, slots: dict[str, _Reading]) -> _Reading | None:
    if slot == WAI_ITEMS_SLOT:
        return next((r for s, r in slots.items() if s.startswith("wai.")), None)
    if slot.startswith("wai."):
        return slots.get(WAI_ITEMS_SLOT)
    return None


def _clash_message(reading: _Reading, first: _Reading) -> str:
    day = reading.day.isoformat()
    if reading.slot == first.slot:
        return (
            f"a second {SLOT_LABEL[reading.slot]} on {day} (the first is {first.at}); "
            "send one value per measure and date"
        )
    return (
        f"both a WAI-SR questionnaire and WAI-SR subscale scores on {day} "
        f"(the other is {first.at}); give one form"
    )


def _episode(
    patient_id: str,
    patient: _Patient | None,
    sessions: list[tuple[dt.date, dict[str, _Reading]]],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The EpisodeIn body, and for each of its fields the FHIRPath it came from."""
    origins: dict[str, str] = {"client_id": "Bundle.entry"}
    episode: dict[str, Any] = {"client_id": patient_id}
    if patient is not None:
        origins["client_id"] = f"{patient.at}.id"
        if patient.birth_date is not None and sessions:
            episode["age"] = _age(patient.birth_date, sessions[-1][0])
            origins["age"] = f"{patient.at}.birthDate"
        if patient.gender is not None:
            episode["gender"] = patient.gender
            origins["gender"] = f"{patient.at}.gender"
    episode["sessions"] = [
        _session(number, day, slots, origins)
        for number, (day, slots) in enumerate(sessions, start=1)
    ]
    return episode, origins


def _session(
    number: int, day: dt.date, slots: dict[str, _Reading], origins: dict[str, str]
) -> dict[str, Any]:
    session: dict[str, Any] = {"number": number, "date": day.isoformat()}
    for slot, reading in slots.items():
        group, _, part = slot.partition(".")
        if group == "wai":
            session.setdefault("wai", {})[part] = reading.value
        else:
            session[group] = {"total": reading.value}
        origins[f"sessions[{number - 1}].{group}"] = reading.at
    return session


def _age(birth: dt.date, on: dt.date) -> int:
    """Whole years on `on` (the latest session date)."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _validate_episode(episode: dict[str, Any], origins: dict[str, str], issues: _Issues) -> None:
    """The API's own episode rules (e.g. age 12-100, at most 50 sessions), each issue at
    the resource the offending value came from."""
    try:
        EpisodeIn.model_validate(episode)
    except ValidationError as exc:
        for err in exc.errors():
            field = _field_path(err["loc"])
            named = f"{field} (from birthDate)" if field == "age" else field
            message = " ".join(str(err["msg"]).split())
            issues.add(
                "value",
                _origin(field, origins),
                f"{named} {_show(err.get('input'))}: {message}",
            )


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _origin(field: str, origins: dict[str, str]) -> str:
    """The FHIRPath of the longest known prefix of an episode field."""
    for key in sorted(origins, key=len, reverse=True):
        if field == key or field.startswith((f"{key}.", f"{key}[")):
            return origins[key]
    return "Bundle.entry"


def _reference(entry: _Entry) -> str | None:
    """How a RiskAssessment refers to an input: Type/id, else its urn:uuid fullUrl."""
    resource_id = entry.resource.get("id")
    if isinstance(resource_id, str):
        return f"{entry.kind}/{resource_id}"
    if entry.full_url is not None and entry.full_url.startswith("urn:uuid:"):
        return entry.full_url
    return None


def _basis(readings: list[_Reading]) -> list[str]:
    return list(dict.fromkeys(r.reference for r in readings if r.reference is not None))


# --- small helpers for untyped JSON --------------------------------------------------------


def _obj(value: object) -> bool:
    return isinstance(value, dict)


def _field(value: object, name: str) -> object:
    return value.get(name) if isinstance(value, dict) else None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _coding(coding: object) -> tuple[object, object]:
    return _field(coding, "system"), _field(coding, "code")


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "null")


def _show(value: object) -> str:
    """A value for a message: scalars shown (cut short), containers only named."""
    if isinstance(value, dict | list):
        return _kind(value)
    return _cut(repr(value))


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _listed(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))
