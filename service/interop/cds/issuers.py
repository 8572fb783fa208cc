"""Trusted issuers: the EHRs allowed to call, read from the issuers file (docs/cds-hooks.md),
each with its public keys, the one clinic it speaks for and the URLs it may name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from service.interop.cds.limits import MAX_CLAIM_CHARS, MAX_URL_CHARS, MIN_RSA_BITS, CdsConfigError
from training.vocabulary import ID_RULE, is_id

_ISS_RE = re.compile(r"[!-~]{1,255}")  # printable ASCII, no spaces
# JWK members that only private or symmetric keys have (RFC 7518 §6.2.2, §6.3.2, §6.4.1)
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_ISSUER_FIELDS = frozenset({"iss", "clinic", "jwks", "fhir_servers", "jku"})
_REQUIRED_ISSUER_FIELDS = ("iss", "clinic", "jwks")


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
