"""The model's standing at the clinic it answers, in the words every door uses.

An answer says whether its model was updated on this clinic's own outcomes ("local", with
the date) or is the network default, not yet checked at this clinic
(service.scoring.score.standing sets the two fields of the Prediction). The JSON answer
carries the fields; the FHIR RiskAssessment's note, the CDS card and the clinician view
say this sentence, so the three cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from service.core.prediction import Prediction


def standing_note(answer: Prediction) -> str:
    """The standing in words, as the FHIR note, the CDS card and the clinician view say it.
    A risk stored before answers carried a standing was a network default's (it reads back
    as one: Prediction.from_json)."""
    if answer.calibration == "local":
        return f"Model updated on this clinic's own outcomes ({answer.locally_updated_on})."
    return (
        "Network default model, not yet checked at this clinic: its probabilities may be "
        "off here until it is updated on this clinic's outcomes."
    )


def caseload_models(versions: dict[str, int], serving: str | None) -> dict[str, Any]:
    """A caseload's `models`: the version serving the clinic (None while no model is
    loaded: the stored caseload still answers), how many of the clients that match each
    version's stored risk is from, and whether some are still being recomputed after a
    change of model (service.scoring.rescoring), so a mixed list says so."""
    return {
        "serving": serving,
        "versions": dict(sorted(versions.items())),
        "recomputing": serving is not None and any(v != serving for v in versions),
    }


def recomputing_note(versions: dict[str, int], serving: str | None) -> str | None:
    """The clinician view's sentence while a caseload mixes models; None when it does not
    (or when no model is loaded to compare with)."""
    stale = sum(n for version, n in versions.items() if version != serving)
    if serving is None or not stale:
        return None
    return (
        f"{stale} of {sum(versions.values())} risks listed were computed by an earlier model "
        f"and are being recomputed with {serving}; until then each row names its own model."
    )
