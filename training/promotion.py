"""The promotion rule: when a challenger may become a champion, the network default's or a
clinic's. Written once, here, so that `dropout-risk models promote` and the service's
promote API (later) apply the same rule through `promote`.

A challenger is refused when:

- it has no comparison recorded (dropout-risk compare), or its last comparison was not
  against the champion that now serves that scope (the clinic's own champion, else the
  network default) for that same clinic;
- that comparison found it worse on calibration (training.compare's verdict);
- or it does worse than the champion in some subgroup of at least `min_group_clients`
  clients, beyond a margin: an AUC lower by more than `subgroup_auc_margin`, or an
  observed/expected ratio further from 1 by more than `subgroup_calibration_margin`.
  Smaller groups are left out: their point estimates swing by more than the margins
  (the comparison page still shows them).

Nothing is refused when the scope has no champion yet (the first champion of an empty
registry) or when the version already serves it. `force` with a `reason` overrides a
refusal; who (`actor`), why, and what was overridden go into the registry's history.
train --promote is the network-scope bootstrap path and does not come through here
(training/train.py; docs/updating.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from training.artifact_schema import RegistryFile
from training.errors import DropoutRiskError
from training.registry import PromotionNote, Registry, check_clinic

SUBGROUP_AUC_MARGIN = 0.05
SUBGROUP_CALIBRATION_MARGIN = 0.10
MIN_GROUP_CLIENTS = 100  # the report's "small group" line (training.report.SMALL_GROUP_CLIENTS)


class PromotionRefused(DropoutRiskError):
    """The promotion rule refuses the challenger (or --force came without --reason)."""


@dataclass(frozen=True)
class PromotionRule:
    """The margins of the subgroup check (documented defaults; configurable)."""

    subgroup_auc_margin: float = SUBGROUP_AUC_MARGIN
    subgroup_calibration_margin: float = SUBGROUP_CALIBRATION_MARGIN
    min_group_clients: int = MIN_GROUP_CLIENTS


@dataclass(frozen=True)
class PromotionCheck:
    """What the rule found: whether the version may serve the scope, and every refusal."""

    version: str
    clinic: str | None
    current: str | None
    refusals: tuple[str, ...] = field(default_factory=tuple)

    @property
    def allowed(self) -> bool:
        return not self.refusals


def scope(clinic: str | None) -> str:
    return f"clinic {clinic}" if clinic else "the network default"


def check_promotion(
    index: RegistryFile, version: str, clinic: str | None, rule: PromotionRule = PromotionRule()
) -> PromotionCheck:
    """The rule applied to `version` for `clinic` (None: the network default)."""
    current = index.champion_of(clinic)
    if current is None or current == version:
        return PromotionCheck(version, clinic, current)
    record = index.comparison_of(version)
    if record is None:
        return PromotionCheck(
            version,
            clinic,
            current,
            (
                f"{version} has no comparison; run `dropout-risk compare --champion champion "
                f"--challenger {version}{f' --clinic {clinic}' if clinic else ''}` first",
            ),
        )
    if record.champion != current or record.clinic != clinic:
        return PromotionCheck(
            version,
            clinic,
            current,
            (
                f"the last comparison of {version} was against {record.champion} for "
                f"{scope(record.clinic)}, not against {current}, the champion of {scope(clinic)}",
            ),
        )
    refusals = []
    if record.calibration.verdict == "worse":
        low, high = record.calibration.ci95
        refusals.append(
            f"worse on calibration than {current} (calibration error difference "
            f"{record.calibration.estimate:+.4f}, 95% CI {low:+.4f} to {high:+.4f})"
            if record.calibration.estimate is not None and low is not None and high is not None
            else f"worse on calibration than {current}"
        )
    for g in record.subgroups:
        if g.n_clients < rule.min_group_clients:
            continue
        name = f"{g.factor} {g.group} ({g.n_clients} clients)"
        old, new = g.champion, g.challenger
        if old.auc is not None and new.auc is not None:
            drop = old.auc - new.auc
            if drop > rule.subgroup_auc_margin:
                refusals.append(
                    f"{name}: AUC {new.auc:.3f} against {old.auc:.3f}, lower "
                    f"by {drop:.3f} > {rule.subgroup_auc_margin}"
                )
        a, b = old.observed_expected, new.observed_expected
        if a is not None and b is not None:
            worse = abs(b - 1) - abs(a - 1)
            if worse > rule.subgroup_calibration_margin:
                refusals.append(
                    f"{name}: observed/expected {b:.2f} against {a:.2f}, further from 1 by "
                    f"{worse:.2f} > {rule.subgroup_calibration_margin}"
                )
    return PromotionCheck(version, clinic, current, tuple(refusals))


@dataclass(frozen=True)
class Promotion:
    """A promotion done: the check, the version that served the scope before, forced or not."""

    check: PromotionCheck
    previous: str | None
    forced: bool


@dataclass(frozen=True)
class Override:
    """How the door a promotion came through spells the override, for its messages."""

    door: str  # what refuses: the command, or the route
    force: str
    reason: str


CLI_OVERRIDE = Override("models promote", "--force", '--reason "..."')
API_OVERRIDE = Override(
    "POST /v1/models/{version}/promote", '"force": true', 'a "reason" in the same body'
)


def promote(
    registry: Registry,
    version: str,
    clinic: str | None = None,
    actor: str = "unrecorded",
    path: str = "models promote",
    force: bool = False,
    reason: str | None = None,
    rule: PromotionRule = PromotionRule(),
    override: Override = CLI_OVERRIDE,
) -> Promotion:
    """Promote `version` for `clinic` if the rule allows it, or if `force` (with a reason);
    PromotionRefused otherwise, and nothing is written. The messages name the override
    in the words of the door it came through (`override`)."""
    check_clinic(clinic)
    if force and not (reason or "").strip():
        raise PromotionRefused(
            f"{override.force}: needs {override.reason} (why the promotion rule is "
            "overridden; recorded in the registry history)"
        )
    entry = registry.entry(version)
    check = check_promotion(registry.index(), entry.version, clinic, rule)
    if not check.allowed and not force:
        raise PromotionRefused(
            f"{override.door}: {entry.version} may not become the champion of "
            f"{scope(clinic)}: "
            + "; ".join(check.refusals)
            + f"; override with {override.force} and {override.reason} (recorded in the "
            "registry history)"
        )
    note = PromotionNote(
        actor=actor,
        path=path,
        forced=force and not check.allowed,
        reason=reason,
        overridden=check.refusals if force else (),
    )
    previous = registry.promote(entry.version, clinic, note)
    return Promotion(check, previous, note.forced)
