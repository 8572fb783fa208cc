"""Suggested next-session actions for the factors that raise a client's dropout risk.

Each action is an alliance-building practice from the psychotherapy literature summarised in
docs/explanations.md, written to the therapist in
one to three plain sentences, with its source. They are prompts for clinical judgement, not
instructions: the service supports decisions and diagnoses nothing. No questionnaire item
wording appears here (WAI-SR, SRS and ORS are copyrighted).

Only factors that raise risk lead to actions: a factor that lowers risk is something going
well, and suggesting work on it would add noise to an alert clinicians already see too many
of. Actions come in factor order (largest contribution first), each at most once.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.explanation.groups import Factor


@dataclass(frozen=True)
class Action:
    """One practice to try in the next session, with where the evidence comes from."""

    code: str  # e.g. "rupture_repair"
    text: str  # 1-3 sentences, plain clinical language, addressed to the therapist
    source: str  # citation, author-year


_NORCROSS = "Norcross & Wampold 2011"
_FLUCKIGER = "Flückiger, Del Re, Wampold & Horvath 2018"
_HORVATH = "Horvath, Del Re, Flückiger & Symonds 2011"
_PCOMS = "Duncan & Miller (PCOMS session-by-session feedback)"
_SWIFT = "Swift & Greenberg 2012"

ACTIONS: dict[str, Action] = {
    action.code: action
    for action in (
        Action(
            "goal_agreement",
            "Revisit the goals of therapy together: ask what the client most wants to be "
            "different and agree on one or two goals in their own words. Check that they see "
            "how the work in sessions leads towards those goals.",
            f"{_HORVATH}; {_FLUCKIGER}",
        ),
        Action(
            "task_agreement",
            "Agree on how you will work: explain the approach in plain words, ask how it fits "
            "the client, and settle the tasks and pace together, adjusting them if they do not "
            "fit.",
            f"{_HORVATH}; {_NORCROSS}",
        ),
        Action(
            "rupture_repair",
            "Check in openly about the relationship: name the change you noticed, invite the "
            "client to say what has not felt right, and acknowledge your part without "
            "defending it. Agree together on what to change.",
            f"Safran & Muran (rupture repair); {_NORCROSS}",
        ),
        Action(
            "session_feedback",
            "Before the session ends, ask for frank feedback on it: what fitted, what did "
            "not, and what to do differently next time. Thank the client for criticism and "
            "show in the next session that you acted on it.",
            f"{_PCOMS}; {_NORCROSS}",
        ),
        Action(
            "empathy_validation",
            "Make room for the client's experience: listen actively, reflect back what you "
            "hear, and validate feelings that make sense in their situation. Check that you "
            "have understood before moving on to techniques.",
            f"{_NORCROSS}; Gelso & Hayes 1998",
        ),
        Action(
            "set_expectations",
            "Talk through what therapy involves: how often you meet, roughly how long it "
            "takes, what happens between sessions, confidentiality, and what to do if a "
            "session has to be missed. Agree how you will both notice if it is not working.",
            f"{_SWIFT}; {_NORCROSS}",
        ),
        Action(
            "progress_review",
            "Review progress together using the symptom scores: ask whether the client feels "
            "better, worse or the same, and revisit the treatment plan if things are not "
            "moving. If they already feel better, discuss how and when to end rather than "
            "stopping without a plan.",
            f"{_PCOMS}; {_SWIFT}",
        ),
        Action(
            "flexible_engagement",
            "Ask early what the client expects from therapy and agree on practical "
            "arrangements that fit their life, such as session times, reminders and how to "
            "reach you. Dropout is more common among younger clients.",
            _SWIFT,
        ),
        Action(
            "measures_completion",
            "Ask the client to complete the missing questionnaires and explain why they "
            "matter: their answers help you both notice early when therapy is not fitting, "
            "so it can be adjusted.",
            f"{_PCOMS}; {_NORCROSS}",
        ),
    )
}

FACTOR_ACTIONS: dict[str, tuple[str, ...]] = {
    "alliance_low": ("goal_agreement", "set_expectations"),
    "alliance_decline": ("rupture_repair",),
    "goal_task_low": ("goal_agreement", "task_agreement"),
    "bond_low": ("empathy_validation",),
    "srs_low": ("session_feedback",),
    "srs_decline": ("rupture_repair", "session_feedback"),
    "symptoms": ("progress_review",),
    "attendance_gaps": ("set_expectations",),
    "age": ("flexible_engagement",),
    "measures_missing": ("measures_completion",),
}


def suggested_actions(factors: list[Factor], limit: int = 3) -> list[Action]:
    """Actions for the factors that RAISE risk, in factor order, deduplicated, at most
    `limit`. Factors come from `explain`, largest contribution first, so the first actions
    address what matters most for this client."""
    chosen: dict[str, Action] = {}
    for factor in factors:
        if factor.direction != "raises":
            continue
        for code in FACTOR_ACTIONS.get(factor.code, ()):
            if len(chosen) >= limit:
                return list(chosen.values())
            chosen.setdefault(code, ACTIONS[code])
    return list(chosen.values())
