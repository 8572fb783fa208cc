"""The typed shape of the reference profile that metadata.json carries for monitoring.

Why a profile: once a model serves a clinic, the only way to see that the clinic's clients
no longer look like the development data (a younger case mix, an instrument no longer
recorded, fortnightly instead of weekly sessions) before outcomes arrive months later is
to compare them with a summary of the development data that travels with the model. The
profile is that summary, computed once at train time (training/monitoring_profile.py) on
the development clients, each at the latest landmark it reached: the same unit a
monitoring window counts (training/monitoring.py).

It stays small (about 12 KB of the indented metadata.json for 3,000 clients): bin edges
and shares, never rows. It holds no client data: only shares, counts of the whole
development set and edges of quantile bins over at least hundreds of clients.

This module imports pydantic only, so `training.artifact_schema` can type the field without
loading numpy or scipy.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from training.stored_document import StoredDocument
from training.vocabulary import MAX_LANDMARK

PROFILE_VERSION = 1

Share = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class Bins(StoredDocument):
    """Quantile bins of one quantity over the reference clients that have a value.

    `edges` are the upper edges of all bins but the last: bin 0 is (-inf, edges[0]], bin i
    is (edges[i-1], edges[i]] and the last is (edges[-1], inf); `shares` (one more than
    `edges`) are the reference clients' shares per bin, summing to 1. A quantity never
    observed has no edges and no shares.
    """

    edges: list[Finite]
    shares: list[Share]


class FeatureReference(Bins):
    """A feature's bins, with the share of reference clients without a value (`missing`)
    and the share outside the model's training range, the FeatureClip bounds (`outside`)."""

    missing: Share
    outside: Share


class Estimate(StoredDocument):
    """A figure of the reference with its standard error (None where undefined)."""

    value: Finite | None
    se: Finite | None


class LandmarkReference(StoredDocument):
    """The reference clients whose latest landmark is `landmark`: their count, the share
    flagged moderate-or-high and high at the model's thresholds, and the AUC the model's
    own probabilities imply among them (confidence-based performance estimation)."""

    landmark: Annotated[int, Field(ge=1, le=MAX_LANDMARK)]
    clients: Annotated[int, Field(ge=0)]
    moderate: Share
    high: Share
    expected_auc: Estimate


class ExpectedReference(StoredDocument):
    """What the model's probabilities imply over all reference clients: the AUC, the
    sensitivity of each flag level and the dropout rate (each with its standard error)."""

    auc: Estimate
    sensitivity_moderate: Estimate
    sensitivity_high: Estimate
    dropout_rate: Estimate


class ReferenceProfile(StoredDocument):
    """The development data as monitoring compares a clinic's window with it."""

    profile_version: int = PROFILE_VERSION
    clients: Annotated[int, Field(ge=1)]  # development clients, each once
    parameters: Annotated[int, Field(ge=1)]  # predictor parameters (the sample-size rule)
    landmarks: Annotated[list[LandmarkReference], Field(min_length=1)]
    features: dict[str, FeatureReference]
    instruments: dict[str, Share]  # wai_sr, srs, ors, phq9: share of clients with a value
    outside_any: Share  # share of clients outside the training range on any feature
    score: Bins  # the calibrated probability
    expected: ExpectedReference
