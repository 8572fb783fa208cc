"""CDS Hooks 2.0 (https://cds-hooks.hl7.org/2.0/): trusted issuers, client JWTs, the
patient-view request and the card. No HTTP here: service.api.cds wires it up.

Who may call. An EHR (the CDS client) signs a short-lived JWT for every call. Its issuer must
be registered in the issuers file (docs/cds-hooks.md) with the public keys that verify it and
the one clinic it speaks for: the clinic comes from our configuration, never from a claim, so
a token can only ever reach its own clinic's clients (OWASP API1). The checks follow the CDS
Hooks 2.0 security section and OWASP API2: an algorithm allowlist (ES384, RS384) applied
before any key is looked at, keys only from the configured JWKS (a `jku` header is never
fetched, OWASP API7), audience, lifetime and a jti replay cache.

Nothing here logs or echoes a token: refusals carry a fixed short reason.
"""

from __future__ import annotations

import copy
import heapq
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, Self

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.types import Options
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    UrlConstraints,
    model_validator,
)

from service.core.schemas import Identifier
from training.errors import DropoutRiskError
from training.vocabulary import ID_RULE, is_id

log = logging.getLogger("dropout_risk.cds")

SERVICE_ID = "dropout-risk"
HOOK = "patient-view"

# --- limits -------------------------------------------------------------------------------
ALGORITHMS: tuple[str, ...] = ("ES384", "RS384")  # CDS Hooks 2.0: no "none", no HMAC
MAX_TOKEN_CHARS = 8192  # a signed CDS JWT is well under 2 KB; more is not a CDS client
MAX_LIFETIME_SECONDS = 300  # exp - iat; CDS Hooks recommends short-lived tokens (5 minutes)
MAX_CLAIM_CHARS = 255  # jti and sub: they are stored (replay cache) and audited
MIN_RSA_BITS = 2048
SUMMARY_MAX = 139  # CDS Hooks: a card summary is "<140 characters"
MAX_USER_ID = 256
MAX_PREFETCH_KEYS = 10
MAX_EXTENSION_KEYS = 32
MAX_CONTEXT_EXTRAS = 32
MAX_URL_CHARS = 2048

_ISS_RE = re.compile(r"[!-~]{1,255}")  # printable ASCII, no spaces
# JWK members that only private or symmetric keys have (RFC 7518 §6.2.2, §6.3.2, §6.4.1)
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_ISSUER_FIELDS = frozenset({"iss", "clinic", "jwks", "fhir_servers", "jku"})
_REQUIRED_ISSUER_FIELDS = ("iss", "clinic", "jwks")
_REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]


class CdsConfigError(DropoutRiskError):
    """The trusted-issuers file is unreadable or breaks a rule; names entry, field, rule."""


class CdsAuthError(DropoutRiskError):
    """A CDS call is refused: 401. The message is a fixed reason and never quotes the token."""


# --- trusted issuers ------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedIssuer:
    """One EHR allowed to call: its `iss`, the clinic it speaks for, its public keys, and the
    URLs it may name (FHIR servers, jku) that we would ever consider. Checked on creation,
    so an issuer that exists is one we can safely verify against."""

    iss: str
    clinic: str
    jwks: dict[str, Any]
    fhir_servers: tuple[str, ...] = ()
    jku: tuple[str, ...] = ()
    _keys: Mapping[str, jwt.PyJWK] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.iss, str) or not _ISS_RE.fullmatch(self.iss):
            raise CdsConfigError(
                f"iss: {self.iss!r} must be 1 to 255 printable ASCII characters without spaces"
            )
        if not isinstance(self.clinic, str) or not is_id(self.clinic):
            raise CdsConfigError(f"clinic: {self.clinic!r} must be {ID_RULE}")
        _check_urls("fhir_servers", self.fhir_servers)
        _check_urls("jku", self.jku)
        object.__setattr__(self, "_keys", _public_keys(self.jwks))

    def key(self, kid: str) -> jwt.PyJWK | None:
        """The verification key with this kid, if the issuer registered one."""
        return self._keys.get(kid)


def _check_urls(name: str, urls: Any) -> None:
    """Allowlisted URLs are compared exactly, so they must be plain absolute https URLs."""
    if not isinstance(urls, tuple):
        raise CdsConfigError(f"{name}: must be a list of https URLs")
    for i, url in enumerate(urls):
        ok = isinstance(url, str) and len(url) <= MAX_URL_CHARS
        if not ok or not re.fullmatch(r"https://[^\s/?#@]+(/[^\s?#]*)?", url):
            raise CdsConfigError(
                f"{name}[{i}]: {url!r} must be an absolute https URL without query, fragment "
                "or credentials"
            )


def _public_keys(jwks: Any) -> dict[str, jwt.PyJWK]:
    """kid -> key for a JWKS of public signing keys. Private or symmetric keys are refused
    outright: a private key in this file means it was copied from the wrong place (and is
    now exposed), and an `oct` key would be an HMAC secret, which CDS Hooks forbids."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise CdsConfigError('jwks: must be an object {"keys": [...]} with at least one key')
    keys: dict[str, jwt.PyJWK] = {}
    for i, jwk in enumerate(jwks["keys"]):
        where = f"jwks.keys[{i}]"
        kid = _check_jwk(jwk, where)
        if kid in keys:
            raise CdsConfigError(f"{where}.kid: {kid!r} is used twice; a kid must pick one key")
        keys[kid] = _parse_jwk(jwk, where)
    parsed = jwt.PyJWKSet.from_dict(jwks)  # the library's own view must agree with ours
    if len(parsed.keys) != len(keys):
        raise CdsConfigError("jwks: some keys are not usable public keys")
    return keys


def _check_jwk(jwk: Any, where: str) -> str:
    """The rules one JWK must follow; returns its kid."""
    if not isinstance(jwk, dict):
        raise CdsConfigError(f"{where}: must be a JWK object")
    if jwk.get("kty") == "oct":
        raise CdsConfigError(f"{where}.kty: symmetric 'oct' keys are refused (HMAC is forbidden)")
    private = sorted(_PRIVATE_MEMBERS & jwk.keys())
    if private:
        raise CdsConfigError(
            f"{where}: private key member(s) {', '.join(private)} present; register the "
            "public key only (and treat this private key as leaked)"
        )
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty not in ("EC", "RSA") or (kty == "EC" and crv != "P-384"):
        raise CdsConfigError(
            f"{where}.kty: must be EC with crv P-384 (ES384) or RSA (RS384), "
            f"not kty={kty!r} crv={crv!r}"
        )
    expected = "ES384" if kty == "EC" else "RS384"
    if "alg" in jwk and jwk["alg"] != expected:
        raise CdsConfigError(f"{where}.alg: must be {expected} for a {kty} key")
    if "use" in jwk and jwk["use"] != "sig":
        raise CdsConfigError(f"{where}.use: must be 'sig' for a verification key")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not 1 <= len(kid) <= MAX_CLAIM_CHARS:
        raise CdsConfigError(f"{where}.kid: required, a string of 1 to 255 characters")
    return kid


def _parse_jwk(jwk: dict[str, Any], where: str) -> jwt.PyJWK:
    try:
        key = jwt.PyJWK.from_dict(jwk)
    except jwt.PyJWTError as exc:
        raise CdsConfigError(f"{where}: not a valid public JWK ({exc})") from None
    if isinstance(key.key, rsa.RSAPublicKey) and key.key.key_size < MIN_RSA_BITS:
        raise CdsConfigError(f"{where}.n: RSA keys must have at least {MIN_RSA_BITS} bits")
    return key


def load_issuers(path: Path) -> dict[str, TrustedIssuer]:
    """The trusted issuers by iss. A missing file means none (every CDS call gets 401), so a
    fresh install is closed by default; a file that exists but is wrong stops the service
    instead of silently trusting less (or more) than the operator meant."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CdsConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise CdsConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or set(doc) != {"issuers"} or not isinstance(doc["issuers"], list):
        raise CdsConfigError(f'{path}: must be an object {{"issuers": [...]}} and nothing else')
    issuers: dict[str, TrustedIssuer] = {}
    for i, entry in enumerate(doc["issuers"]):
        issuer = _issuer_entry(entry, f"{path}: issuers[{i}]")
        if issuer.iss in issuers:
            raise CdsConfigError(f"{path}: issuers[{i}].iss: {issuer.iss!r} is listed twice")
        issuers[issuer.iss] = issuer
    return issuers


def _issuer_entry(entry: Any, where: str) -> TrustedIssuer:
    """One entry of the issuers file, its errors prefixed with where it is."""
    if not isinstance(entry, dict):
        raise CdsConfigError(f"{where}: must be an object")
    unknown = sorted(set(entry) - _ISSUER_FIELDS)
    if unknown:
        raise CdsConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(_ISSUER_FIELDS))}"
        )
    for name in _REQUIRED_ISSUER_FIELDS:
        if name not in entry:
            raise CdsConfigError(f"{where}.{name}: required")
    for name in ("fhir_servers", "jku"):
        if not isinstance(entry.get(name, []), list):
            raise CdsConfigError(f"{where}.{name}: must be a list of https URLs")
    try:
        return TrustedIssuer(
            iss=entry["iss"],
            clinic=entry["clinic"],
            jwks=entry["jwks"],
            fhir_servers=tuple(entry.get("fhir_servers", [])),
            jku=tuple(entry.get("jku", [])),
        )
    except CdsConfigError as exc:
        raise CdsConfigError(f"{where}.{exc}") from None


# --- client JWT -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CdsCaller:
    """Who made a verified CDS call: the EHR (iss), its user or client id (sub, if sent), the
    clinic its registration binds it to, and the token's jti (for the audit trail)."""

    iss: str
    sub: str | None
    clinic: str
    jti: str


def _refuse(reason: str) -> NoReturn:
    """Refuse with a fixed reason; logged without the token or any claim value."""
    log.info("CDS client JWT refused: %s", reason)
    raise CdsAuthError(reason)


def verify_client_jwt(
    token: str,
    audience: str,
    issuers: Mapping[str, TrustedIssuer],
    remember_jti: Callable[[str, str, datetime], bool],
    now: float | None = None,
    leeway: int = 30,
) -> CdsCaller:
    """The caller of a CDS call, or CdsAuthError. `audience` is this service's URL
    for the route called (settings.base_url + path, never the request's Host).

    Order matters: the algorithm is allowlisted before any key is touched (so an HS256 token
    can never be checked against a public key used as an HMAC secret), the issuer is chosen
    from the unverified claims only to find its keys, the jti is remembered only after the
    signature holds (so forged tokens cannot fill the replay cache). Times are checked here
    against `now` (tests) or the clock, not by PyJWT, so one code path serves both."""
    header = _header(token)
    alg = _algorithm(header)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        _refuse("the JWT header has no kid")
    issuer = _issuer(token, issuers)
    _check_jku(header, issuer)
    key = _key(issuer, kid, alg)
    claims = _decode(token, key, alg, audience, issuer.iss, leeway)
    exp = _check_times(claims, time.time() if now is None else now, leeway)
    jti, sub = _jti(claims), _sub(claims)
    # remembered until the last moment the token could still be accepted
    if not remember_jti(issuer.iss, jti, datetime.fromtimestamp(exp + leeway, UTC)):
        _refuse("token replayed")
    return CdsCaller(iss=issuer.iss, sub=sub, clinic=issuer.clinic, jti=jti)


def _header(token: str) -> dict[str, Any]:
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
        _refuse("the CDS client JWT is missing or too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        _refuse("the CDS client JWT is malformed")
    typ = header.get("typ", "JWT")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        _refuse("the JWT header typ must be JWT")
    return header


def _algorithm(header: dict[str, Any]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        _refuse("JWT algorithm not allowed: use ES384 or RS384")
    return alg


def _issuer(token: str, issuers: Mapping[str, TrustedIssuer]) -> TrustedIssuer:
    """The registered issuer the token claims to come from (unverified: used only to pick
    the keys; the signature and `iss` itself are checked by decode)."""
    if not issuers:
        _refuse("no CDS client is registered with this service")
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        _refuse("the CDS client JWT is malformed")
    iss = claims.get("iss")
    issuer = issuers.get(iss) if isinstance(iss, str) else None
    if issuer is None:
        _refuse("the JWT issuer is not trusted")
    return issuer


def _check_jku(header: dict[str, Any], issuer: TrustedIssuer) -> None:
    """A jku is never fetched (OWASP API7 SSRF); one that is not allowlisted for this issuer
    says the token expects keys we do not hold, so it is refused rather than ignored."""
    if "jku" in header and header["jku"] not in issuer.jku:
        _refuse("the JWT jku is not allowlisted for this issuer")


def _key(issuer: TrustedIssuer, kid: str, alg: str) -> Any:
    """The issuer's key for kid, if its type fits alg (EC P-384 for ES384, RSA for RS384)."""
    jwk = issuer.key(kid)
    if jwk is None:
        _refuse("unknown kid for this issuer")
    key = jwk.key
    fits = (
        isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1)
        if alg == "ES384"
        else isinstance(key, rsa.RSAPublicKey)
    )
    if not fits:
        _refuse("the key for this kid does not match the JWT algorithm")
    return key


def _decode(token: str, key: Any, alg: str, audience: str, iss: str, leeway: int) -> dict[str, Any]:
    """Signature, audience, issuer and required claims by PyJWT; times in _check_times."""
    options: Options = {
        "require": _REQUIRED_CLAIMS,
        "verify_exp": False,
        "verify_iat": False,
        "verify_nbf": False,
        "enforce_minimum_key_length": True,
    }
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=audience,
            issuer=iss,
            options=options,
            leeway=leeway,
        )
    except jwt.InvalidSignatureError:
        _refuse("the JWT signature does not verify")
    except jwt.InvalidAudienceError:
        _refuse("the JWT audience is not this service URL")
    except jwt.MissingRequiredClaimError as exc:
        _refuse(f"the JWT lacks the {exc.claim} claim")
    except jwt.PyJWTError:
        _refuse("the CDS client JWT is invalid")
    return claims


def _numeric_date(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        _refuse(f"the JWT {name} claim must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        _refuse(f"the JWT {name} claim must be a number")
    return float(value)


def _check_times(claims: dict[str, Any], now: float, leeway: int) -> float:
    """exp, iat and nbf against now (with leeway), and a short lifetime; returns exp."""
    exp, iat = _numeric_date(claims, "exp"), _numeric_date(claims, "iat")
    if exp <= now - leeway:
        _refuse("the JWT has expired")
    if iat > now + leeway:
        _refuse("the JWT was issued in the future")
    if "nbf" in claims and _numeric_date(claims, "nbf") > now + leeway:
        _refuse("the JWT is not valid yet")
    if exp <= iat:
        _refuse("the JWT expires before it was issued")
    if exp - iat > MAX_LIFETIME_SECONDS:
        _refuse("the JWT lives longer than 5 minutes")
    return exp


def _jti(claims: dict[str, Any]) -> str:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= MAX_CLAIM_CHARS:
        _refuse("the JWT jti must be 1 to 255 characters")
    return jti


def _sub(claims: dict[str, Any]) -> str | None:
    sub = claims.get("sub")
    if sub is not None and (not isinstance(sub, str) or len(sub) > MAX_CLAIM_CHARS):
        _refuse("the JWT sub must be a string of at most 255 characters")
    return sub


class MemoryJtiCache:
    """Seen (iss, jti) pairs until their tokens expire, in memory: for tests and a single
    process. Several workers need the shared, database-backed function of the same
    signature, or a token replayed against another worker would pass."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str]] = set()
        self._expiry: list[tuple[float, str, str]] = []  # min-heap: cheap purge

    def __call__(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """True the first time (iss, jti) is seen while unexpired, False on a replay."""
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware (UTC)")
        with self._lock:
            self._purge(self._clock())
            if (iss, jti) in self._seen:
                return False
            self._seen.add((iss, jti))
            heapq.heappush(self._expiry, (expires_at.timestamp(), iss, jti))
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def __bool__(self) -> bool:
        """Always true: an empty cache is still a cache, so `cache or default` keeps it."""
        return True

    def _purge(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, iss, jti = heapq.heappop(self._expiry)
            self._seen.discard((iss, jti))


# --- hook request ---------------------------------------------------------------------------

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


# --- discovery and cards --------------------------------------------------------------------

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


_INDICATOR = {"low": "info", "moderate": "warning", "high": "critical"}
_TRAILING_NUMBERS = re.compile(r"\s*\([^()]*\)\s*$")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def card(result: dict[str, Any], link_url: str, card_uuid: str) -> dict[str, Any]:
    """The one card for a prediction result (service.scoring.score). The summary names the level
    and the main reason only (clinicians scan summaries; details are one click away) and
    never the client id, which the EHR already shows beside it."""
    level = result["risk_level"]
    if level not in _INDICATOR:
        raise ValueError(f"risk_level {level!r} is not one of low, moderate, high")
    return {
        "uuid": str(uuid.UUID(card_uuid)),
        "summary": summary(result),
        "indicator": _INDICATOR[level],
        "detail": detail(result),
        "source": {"label": f"dropout-risk model {result['model']['version']}"},
        "links": [{"label": "Open in dropout-risk", "url": link_url, "type": "absolute"}],
    }


def cards_response(cards: list[dict[str, Any]]) -> dict[str, Any]:
    """The CDS Hooks response body; an empty list when there is nothing to say."""
    return {"cards": cards}


def summary(result: dict[str, Any]) -> str:
    """'High dropout risk (31%): Alliance fell from session 1 to 2', under 140 characters."""
    head = f"{result['risk_level'].capitalize()} dropout risk ({result['probability']:.0%})"
    reason = _main_reason(result)
    if reason is None:
        return head
    return f"{head}: {_fit(reason, SUMMARY_MAX - len(head) - 2)}"


def _main_reason(result: dict[str, Any]) -> str | None:
    """The largest factor pointing the way the level does (raises for moderate and high,
    lowers for low), without its trailing numbers; None if there is none."""
    wanted = "lowers" if result["risk_level"] == "low" else "raises"
    factors = [f for f in result.get("factors", []) if f.get("direction") == wanted]
    if not factors:
        return None
    top = max(factors, key=lambda f: abs(float(f["contribution"])))
    return _TRAILING_NUMBERS.sub("", str(top["label"])) or None


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


def detail(result: dict[str, Any]) -> str:
    """The card's Markdown: probability, landmark, factors, actions, disclaimer."""
    th = result["thresholds"]
    lines = [
        f"**Dropout risk {result['probability']:.0%} ({result['risk_level']})** at session "
        f"{result['landmark_session']}; moderate from {th['moderate']:.0%}, high from "
        f"{th['high']:.0%}.",
        "",
    ]
    factors = result.get("factors", [])
    if factors:
        lines += ["**Factors** (change in risk, percentage points)", ""]
        lines += [
            f"- {_md(f['label'])}: {f['direction']} risk, "
            f"{float(f['contribution']) * 100:+.1f} points"
            for f in factors
        ]
        lines.append("")
    actions = result.get("suggested_actions", [])
    if actions:
        lines += ["**Suggested for the next session**", ""]
        lines += [f"- {_md(a['text'])} (Source: {_md(a['source'])})" for a in actions]
        lines.append("")
    lines.append(f"*{_md(result['disclaimer'])}* Model {_md(result['model']['version'])}.")
    return "\n".join(lines)
