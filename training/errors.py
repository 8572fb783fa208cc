"""Domain exceptions. Each maps to one clear message and exit status 2 at the CLI edge."""

from __future__ import annotations


class DropoutRiskError(Exception):
    """Base of every error the user can act on (bad input, bad artifact, bad registry)."""


class ContractError(DropoutRiskError):
    """Input tables break the cohort contract; carries the first problems and their count."""

    def __init__(self, problems: list[str], total: int) -> None:
        self.problems = problems
        self.total = total
        more = total - len(problems)
        lines = [f"the input breaks the cohort contract ({total} problem(s)):"]
        lines += [f"  {p}" for p in problems]
        if more > 0:
            lines.append(f"  ... and {more} more problem(s)")
        super().__init__("\n".join(lines))


class ArtifactError(DropoutRiskError):
    """A model artifact is missing, tampered with, or from another scikit-learn version."""


class RegistryError(DropoutRiskError):
    """The registry does not know the version asked for, or cannot be read."""
