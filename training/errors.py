"""Domain exceptions. Each maps to one clear message and exit status 2 at the CLI edge."""

from __future__ import annotations

from collections.abc import Sequence


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
    """The registry does not know the version asked for."""


class RegistryInvalid(DropoutRiskError):
    """registry.json cannot be read or does not match its schema: nothing it lists can be
    trusted, so no version is loaded from it (a running service keeps its verified model)."""


def field_path(loc: Sequence[object], empty: str = "(document)") -> str:
    """A validation error's location as one dotted path: ('sessions', 0, 'wai') ->
    'sessions[0].wai'; `empty` names the whole document."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or empty
