"""The patient-view hook request as this service accepts it: bounded in every member, its
fhirServer checked against the issuer's allowlist and never fetched (OWASP API7).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    UrlConstraints,
    model_validator,
)

from service.core.schemas import Identifier
from service.interop.cds.issuers import TrustedIssuer
from service.interop.cds.limits import (
    MAX_CONTEXT_EXTRAS,
    MAX_EXTENSION_KEYS,
    MAX_PREFETCH_KEYS,
    MAX_URL_CHARS,
    MAX_USER_ID,
)

FhirServerUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=MAX_URL_CHARS)]


class PatientViewContext(BaseModel):
    """patient-view context. Extra members are allowed (the spec lets hooks grow) but
    capped in number, and never used."""

    model_config = ConfigDict(extra="allow")

    userId: str = Field(min_length=1, max_length=MAX_USER_ID)
    patientId: Identifier
    encounterId: Identifier | None = None

    @model_validator(mode="after")
    def _few_extras(self) -> Self:
        if len(self.model_extra or {}) > MAX_CONTEXT_EXTRAS:
            raise ValueError(f"context may carry at most {MAX_CONTEXT_EXTRAS} extra members")
        return self


class HookRequest(BaseModel):
    """A CDS Hooks 2.0 call to the patient-view service. Unknown top-level fields are
    refused (OWASP API3); `extension` is where the spec puts additions. The whole body is
    capped by the service's body limit; the caps here bound what is inside it. The FHIR
    access token and prefetch (health data) are kept out of repr, so out of logs."""

    model_config = ConfigDict(extra="forbid")

    hook: Literal["patient-view"]
    hookInstance: uuid.UUID
    context: PatientViewContext
    prefetch: dict[str, Any] | None = Field(default=None, max_length=MAX_PREFETCH_KEYS, repr=False)
    fhirServer: FhirServerUrl | None = None
    fhirAuthorization: dict[str, Any] | None = Field(default=None, repr=False)
    extension: dict[str, Any] | None = Field(default=None, max_length=MAX_EXTENSION_KEYS)

    @model_validator(mode="after")
    def _authorization_needs_server(self) -> Self:
        """CDS Hooks 2.0: fhirServer is required when fhirAuthorization is sent."""
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirAuthorization requires fhirServer")
        return self


def fhir_server_allowed(url: str | None, issuer: TrustedIssuer) -> bool:
    """Whether a caller-supplied fhirServer is one this issuer registered. Anything else is
    never fetched (OWASP API7 SSRF: the URL comes from the request). Exact comparison, bar
    one trailing slash (pydantic adds it to a bare host). This version fetches nothing at
    all; the route uses this to say why it ignored fhirServer."""
    if not url:
        return False
    wanted = _no_slash(url)
    return any(_no_slash(allowed) == wanted for allowed in issuer.fhir_servers)


def _no_slash(url: str) -> str:
    return url[:-1] if url.endswith("/") else url
