"""The client JWT of every call, verified against its trusted issuer: the algorithm
allowlist first, then key, signature, audience, lifetime and the jti replay cache.

Nothing here logs or echoes a token: refusals carry a fixed short reason.
"""

from __future__ import annotations

import heapq
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.types import Options

from service.interop.cds.issuers import TrustedIssuer
from service.interop.cds.limits import (
    ALGORITHMS,
    MAX_CLAIM_CHARS,
    MAX_LIFETIME_SECONDS,
    MAX_TOKEN_CHARS,
    CdsAuthError,
)
from training.vocabulary import TEXT_REGEX

log = logging.getLogger("dropout_risk.cds")
_REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]


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


# The claims that are stored (the jti in the replay cache, the sub in the audit trail's
# actor) hold no control character: PostgreSQL text cannot hold a NUL, which made a 503.
_STORED_CLAIM = re.compile(TEXT_REGEX)


def _jti(claims: dict[str, Any]) -> str:
    jti = claims.get("jti")
    if (
        not isinstance(jti, str)
        or not 1 <= len(jti) <= MAX_CLAIM_CHARS
        or not _STORED_CLAIM.fullmatch(jti)
    ):
        _refuse("the JWT jti must be 1 to 255 characters, none of them a control character")
    return jti


def _sub(claims: dict[str, Any]) -> str | None:
    sub = claims.get("sub")
    if sub is not None and (
        not isinstance(sub, str)
        or len(sub) > MAX_CLAIM_CHARS
        or (sub and not _STORED_CLAIM.fullmatch(sub))
    ):
        _refuse(
            "the JWT sub must be a string of at most 255 characters, none of them a "
            "control character"
        )
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
