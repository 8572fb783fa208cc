"""The discovery document and the card of a prediction: indicator, summary and detail,
within CDS Hooks' limits.
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

from service.core.prediction import Prediction
from service.core.standing import standing_note
from service.interop.cds.limits import HOOK, SERVICE_ID, SUMMARY_MAX
from training.vocabulary import RISK_LEVELS

_DISCOVERY: dict[str, Any] = {
    "services": [
        {
            "hook": HOOK,
            "id": SERVICE_ID,
            "title": "Psychotherapy dropout risk",
            "description": (
                "When a client's record is opened, the calibrated probability that they drop "
                "out of therapy, its main reasons from early alliance and symptom scores, and "
                "alliance-building actions for the next session. Decision support, not a "
                "diagnosis."
            ),
            "prefetch": {"alliance": "Observation?subject={{context.patientId}}&category=survey"},
            "usageRequirements": (
                "The EHR's issuer must be registered with this service (public keys and "
                "clinic). Needs WAI-SR alliance and symptom scores (survey Observations) from "
                "at least the model's first landmark session; without them no card is shown."
            ),
        }
    ]
}


def discovery() -> dict[str, Any]:
    """The discovery document (a copy: callers may not alter the service's own)."""
    return copy.deepcopy(_DISCOVERY)


_INDICATOR = dict(zip(RISK_LEVELS, ("info", "warning", "critical"), strict=True))
_TRAILING_NUMBERS = re.compile(r"\s*\([^()]*\)\s*$")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def card(result: Prediction, link_url: str, card_uuid: str) -> dict[str, Any]:
    """The one card for a prediction result (service.scoring.score). The summary names the level
    and the main reason only (clinicians scan summaries; details are one click away) and
    never the client id, which the EHR already shows beside it."""
    level = result.risk_level
    if level not in _INDICATOR:
        raise ValueError(f"risk_level {level!r} is not one of low, moderate, high")
    return {
        "uuid": str(uuid.UUID(card_uuid)),
        "summary": summary(result),
        "indicator": _INDICATOR[level],
        "detail": detail(result),
        "source": {"label": f"dropout-risk model {result.model.version}"},
        "links": [{"label": "Open in dropout-risk", "url": link_url, "type": "absolute"}],
    }


def cards_response(cards: list[dict[str, Any]]) -> dict[str, Any]:
    """The CDS Hooks response body; an empty list when there is nothing to say."""
    return {"cards": cards}


def summary(result: Prediction) -> str:
    """'High dropout risk (31%): Alliance fell from session 1 to 2', under 140 characters."""
    head = f"{result.risk_level.capitalize()} dropout risk ({result.probability:.0%})"
    reason = _main_reason(result)
    if reason is None:
        return head
    return f"{head}: {_fit(reason, SUMMARY_MAX - len(head) - 2)}"


def _main_reason(result: Prediction) -> str | None:
    """The largest factor pointing the way the level does (raises for moderate and high,
    lowers for low), without its trailing numbers; None if there is none."""
    wanted = "lowers" if result.risk_level == "low" else "raises"
    factors = [f for f in result.factors if f.direction == wanted]
    if not factors:
        return None
    top = max(factors, key=lambda f: abs(f.contribution))
    return _TRAILING_NUMBERS.sub("", top.label) or None


def _fit(text: str, room: int) -> str:
    """text, or its start cut at a word with an ellipsis, in at most `room` characters."""
    if len(text) <= room:
        return text
    cut = text[: room - 1]
    space = cut.rfind(" ")
    if space > room // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def _md(text: Any) -> str:
    """Our own text, escaped so Markdown (or HTML) in a label cannot restyle the card."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def detail(result: Prediction) -> str:
    """The card's Markdown: probability, landmark, factors, actions, disclaimer."""
    th = result.thresholds
    lines = [
        f"**Dropout risk {result.probability:.0%} ({result.risk_level})** at session "
        f"{result.landmark_session}; moderate from {th.moderate:.0%}, high from "
        f"{th.high:.0%}.",
        "",
    ]
    factors = result.factors
    if factors:
        lines += ["**Factors** (change in risk, percentage points)", ""]
        lines += [
            f"- {_md(f.label)}: {f.direction} risk, {f.contribution * 100:+.1f} points"
            for f in factors
        ]
        lines.append("")
    actions = result.suggested_actions
    if actions:
        lines += ["**Suggested for the next session**", ""]
        lines += [f"- {_md(a.text)} (Source: {_md(a.source)})" for a in actions]
        lines.append("")
    lines.append(f"*{_md(result.disclaimer)}* Model {_md(result.model.version)}.")
    lines += ["", _md(standing_note(result))]
    return "\n".join(lines)
