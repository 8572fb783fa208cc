"""CDS Hooks 2.0: client JWTs from a simulated EHR (real generated keys), the issuers file,
the patient-view request, discovery and the card."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from service.core.prediction import Prediction
from service.interop.cds.cards import card, cards_response, discovery
from service.interop.cds.client_jwt import CdsCaller, MemoryJtiCache, verify_client_jwt
from service.interop.cds.hooks import HookRequest, fhir_server_allowed
from service.interop.cds.issuers import TrustedIssuer, load_issuers
from service.interop.cds.limits import (
    MAX_LIFETIME_SECONDS,
    SERVICE_ID,
    CdsAuthError,
    CdsConfigError,
)
from training.vocabulary import ID_RULE

NOW = 1_900_000_000  # a fixed clock, passed as `now` and to the replay cache
AUD = "https://risk.example/cds-services/dropout-risk"
ISS = "https://ehr.example/cds-client"
CLINIC = "clinic-north.1"
FHIR = "https://ehr.example/fhir/R4"
JKU = "https://ehr.example/.well-known/jwks.json"


# --- the simulated EHR ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ehr:
    """An EHR's signing keys and the issuer registration it would be given."""

    ec_key: ec.EllipticCurvePrivateKey
    rsa_key: rsa.RSAPrivateKey
    issuer: TrustedIssuer

    @property
    def issuers(self) -> dict[str, TrustedIssuer]:
        return {ISS: self.issuer}


def public_jwk(
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, kid: str
) -> dict[str, Any]:
    public = private_key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    return {**jwk, "kid": kid}


@pytest.fixture(scope="module")
def ehr() -> Ehr:
    ec_key = ec.generate_private_key(ec.SECP384R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = {"keys": [public_jwk(ec_key, "ec-1"), public_jwk(rsa_key, "rsa-1")]}
    issuer = TrustedIssuer(ISS, CLINIC, jwks, fhir_servers=(FHIR,), jku=(JKU,))
    return Ehr(ec_key, rsa_key, issuer)


DROP = object()  # a claim value meaning "leave this claim out"


def sign(
    key: Any,
    *,
    alg: str = "ES384",
    kid: str = "ec-1",
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A CDS client JWT as an EHR would send it; claims override or (DROP) remove defaults."""
    payload: dict[str, Any] = {
        "iss": ISS,
        "sub": "ehr-client-7",
        "aud": AUD,
        "iat": NOW,
        "exp": NOW + 240,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    payload = {k: v for k, v in payload.items() if v is not DROP}
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, **(headers or {})})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def handmade(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand: unsigned (secret None) or HMAC-SHA256 with `secret`."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(payload).encode())
    if secret is None:
        return f"{head}.{body}."
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


def claims(**override: Any) -> dict[str, Any]:
    base = {"iss": ISS, "aud": AUD, "iat": NOW, "exp": NOW + 240, "jti": "j-1"}
    return {**base, **override}


class Recorder:
    """A replay cache that records calls (so a test can see it was never reached)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, datetime]] = []
        self.inner = MemoryJtiCache(clock=lambda: NOW)

    def __call__(self, iss: str, jti: str, expires_at: datetime) -> bool:
        self.calls.append((iss, jti, expires_at))
        return self.inner(iss, jti, expires_at)


def verify(
    token: str,
    issuers: Mapping[str, TrustedIssuer],
    cache: Callable[[str, str, datetime], bool] | None = None,
    now: float | None = NOW,
) -> CdsCaller:
    if cache is None:
        cache = MemoryJtiCache(clock=lambda: NOW)
    return verify_client_jwt(token, AUD, issuers, cache, now=now)


def refused(token: str, issuers: Mapping[str, TrustedIssuer]) -> str:
    """The refusal message; it must never quote the token or any of its parts."""
    cache = Recorder()
    with pytest.raises(CdsAuthError) as info:
        verify(token, issuers, cache)
    message = str(info.value)
    for part in token.split("."):
        if len(part) > 8:
            assert part not in message
    assert cache.calls == []  # a refused token never reaches the replay cache
    return message


# --- good tokens ----------------------------------------------------------------------------


def test_es384_token_verifies_to_its_issuer_and_clinic(ehr: Ehr) -> None:
    cache = Recorder()
    token = sign(ehr.ec_key, jti="jti-es-1")
    who = verify(token, ehr.issuers, cache)
    assert who == CdsCaller(iss=ISS, sub="ehr-client-7", clinic=CLINIC, jti="jti-es-1")
    # remembered until the last moment the token could pass: exp + 30 s leeway
    assert cache.calls == [(ISS, "jti-es-1", datetime.fromtimestamp(NOW + 270, UTC))]


def test_rs384_token_verifies(ehr: Ehr) -> None:
    token = sign(ehr.rsa_key, alg="RS384", kid="rsa-1", jti="jti-rs-1", sub="dr-who")
    assert verify(token, ehr.issuers) == CdsCaller(ISS, "dr-who", CLINIC, "jti-rs-1")


def test_sub_is_optional(ehr: Ehr) -> None:
    assert verify(sign(ehr.ec_key, sub=DROP), ehr.issuers).sub is None


def test_real_clock_is_used_without_now(ehr: Ehr) -> None:
    now = int(datetime.now(UTC).timestamp())
    token = sign(ehr.ec_key, iat=now, exp=now + 60, jti="real-clock")
    assert verify(token, ehr.issuers, MemoryJtiCache(), now=None).jti == "real-clock"
    old = sign(ehr.ec_key, iat=now - 300, exp=now - 60)
    with pytest.raises(CdsAuthError, match="expired"):
        verify(old, ehr.issuers, MemoryJtiCache(), now=None)


def test_allowlisted_jku_is_accepted(ehr: Ehr) -> None:
    assert verify(sign(ehr.ec_key, headers={"jku": JKU}), ehr.issuers).iss == ISS


@pytest.mark.parametrize("offset", [-29, 0])
def test_exp_within_leeway_passes(ehr: Ehr, offset: int) -> None:
    token = sign(ehr.ec_key, iat=NOW + offset - 200, exp=NOW + offset)
    assert verify(token, ehr.issuers).clinic == CLINIC


def test_lifetime_of_exactly_five_minutes_passes(ehr: Ehr) -> None:
    token = sign(ehr.ec_key, exp=NOW + MAX_LIFETIME_SECONDS)
    assert verify(token, ehr.issuers).clinic == CLINIC


# --- refused: algorithms ----------------------------------------------------------------------


class Untouchable(Mapping[str, TrustedIssuer]):
    """Issuers that fail the test if anyone looks at them (no key may be looked at)."""

    def __getitem__(self, key: str) -> TrustedIssuer:
        raise AssertionError("issuers were consulted")

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("issuers were consulted")

    def __len__(self) -> int:
        raise AssertionError("issuers were consulted")


def test_alg_none_is_refused_before_any_key_is_looked_at() -> None:
    token = handmade({"alg": "none", "typ": "JWT", "kid": "ec-1"}, claims(), None)
    assert "ES384 or RS384" in refused(token, Untouchable())


def test_alg_none_is_refused_for_a_trusted_issuer(ehr: Ehr) -> None:
    token = handmade({"alg": "none", "typ": "JWT", "kid": "ec-1"}, claims(), None)
    assert "algorithm not allowed" in refused(token, ehr.issuers)


def test_hs256_with_the_public_key_as_secret_is_refused(ehr: Ehr) -> None:
    """The classic confusion attack: the public key (which is public) as an HMAC secret."""
    pem = ehr.rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for kid in ("rsa-1", "ec-1"):
        token = handmade({"alg": "HS256", "typ": "JWT", "kid": kid}, claims(), pem)
        assert "algorithm not allowed" in refused(token, ehr.issuers)
    token = handmade({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(), pem)
    assert "algorithm not allowed" in refused(token, Untouchable())


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_tokens_are_refused(ehr: Ehr, alg: str) -> None:
    token = sign(b"a shared secret of more than sixty-four bytes, long enough for HS512!!", alg=alg)
    assert "algorithm not allowed" in refused(token, ehr.issuers)


@pytest.mark.parametrize(
    ("alg", "kid"), [("ES256", "ec-1"), ("RS256", "rsa-1"), ("PS384", "rsa-1")]
)
def test_other_asymmetric_algorithms_are_refused(ehr: Ehr, alg: str, kid: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else ehr.rsa_key
    assert "algorithm not allowed" in refused(sign(key, alg=alg, kid=kid), ehr.issuers)


# --- refused: issuer and key ------------------------------------------------------------------


def test_wrong_audience_is_refused(ehr: Ehr) -> None:
    token = sign(ehr.ec_key, aud="https://risk.example/cds-services/other")
    assert "audience" in refused(token, ehr.issuers)


def test_unknown_issuer_is_refused(ehr: Ehr) -> None:
    token = sign(ehr.ec_key, iss="https://stranger.example")
    assert "issuer is not trusted" in refused(token, ehr.issuers)


def test_no_registered_issuer_refuses_everything(ehr: Ehr) -> None:
    assert "no CDS client is registered" in refused(sign(ehr.ec_key), {})


def test_unknown_kid_is_refused(ehr: Ehr) -> None:
    assert "unknown kid" in refused(sign(ehr.ec_key, kid="ec-2"), ehr.issuers)


def test_missing_kid_is_refused(ehr: Ehr) -> None:
    token = jwt.encode(claims(), ehr.ec_key, algorithm="ES384")
    assert "no kid" in refused(token, ehr.issuers)


def test_jku_not_allowlisted_is_refused(ehr: Ehr) -> None:
    token = sign(ehr.ec_key, headers={"jku": "https://attacker.example/jwks.json"})
    assert "jku is not allowlisted" in refused(token, ehr.issuers)


def test_other_key_with_the_same_kid_is_refused(ehr: Ehr) -> None:
    impostor = ec.generate_private_key(ec.SECP384R1())
    assert "signature does not verify" in refused(sign(impostor, kid="ec-1"), ehr.issuers)


def test_tampered_payload_is_refused(ehr: Ehr) -> None:
    head, _, signature = sign(ehr.ec_key).split(".")
    forged = b64url(json.dumps(claims(sub="admin")).encode())
    assert "signature does not verify" in refused(f"{head}.{forged}.{signature}", ehr.issuers)


def test_rsa_key_named_by_an_es384_token_is_refused(ehr: Ehr) -> None:
    assert "does not match" in refused(sign(ehr.ec_key, kid="rsa-1"), ehr.issuers)


def test_ec_key_named_by_an_rs384_token_is_refused(ehr: Ehr) -> None:
    token = sign(ehr.rsa_key, alg="RS384", kid="ec-1")
    assert "does not match" in refused(token, ehr.issuers)


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "x" * 9000])
def test_malformed_tokens_are_refused(ehr: Ehr, token: str) -> None:
    with pytest.raises(CdsAuthError, match=r"malformed|missing or too long"):
        verify(token, ehr.issuers)


def test_typ_other_than_jwt_is_refused(ehr: Ehr) -> None:
    token = sign(ehr.ec_key, headers={"typ": "at+jwt"})
    assert "typ" in refused(token, ehr.issuers)


# --- refused: claims and times ----------------------------------------------------------------


def test_expired_token_is_refused(ehr: Ehr) -> None:
    token = sign(ehr.ec_key, iat=NOW - 200, exp=NOW - 31)  # beyond the 30 s leeway
    assert "expired" in refused(token, ehr.issuers)


def test_iat_in_the_future_is_refused(ehr: Ehr) -> None:
    token = sign(ehr.ec_key, iat=NOW + 31, exp=NOW + 120)
    assert "issued in the future" in refused(token, ehr.issuers)


def test_nbf_in_the_future_is_refused(ehr: Ehr) -> None:
    token = sign(ehr.ec_key, nbf=NOW + 60)
    assert "not valid yet" in refused(token, ehr.issuers)


def test_exp_too_far_after_iat_is_refused(ehr: Ehr) -> None:
    token = sign(ehr.ec_key, exp=NOW + MAX_LIFETIME_SECONDS + 1)
    assert "longer than 5 minutes" in refused(token, ehr.issuers)


def test_exp_before_iat_is_refused(ehr: Ehr) -> None:
    token = sign(ehr.ec_key, iat=NOW, exp=NOW - 1)
    assert "before it was issued" in refused(token, ehr.issuers)


@pytest.mark.parametrize("claim", ["jti", "iat", "exp", "aud", "iss"])
def test_missing_required_claim_is_refused(ehr: Ehr, claim: str) -> None:
    message = refused(sign(ehr.ec_key, **{claim: DROP}), ehr.issuers)
    expected = "issuer is not trusted" if claim == "iss" else f"lacks the {claim} claim"
    assert expected in message


@pytest.mark.parametrize("value", ["", "x" * 256, "a\u0000b", "\u001b[0m"])
def test_jti_out_of_bounds_is_refused(ehr: Ehr, value: str) -> None:
    """The jti is stored (the replay cache): a NUL, which PostgreSQL text cannot hold,
    is refused here, not a 503 there."""
    assert "jti must be 1 to 255 characters, none of them a control character" in refused(
        sign(ehr.ec_key, jti=value), ehr.issuers
    )


@pytest.mark.parametrize("value", ["x" * 256, "dr\u0000one"])
def test_a_sub_that_cannot_be_stored_is_refused(ehr: Ehr, value: str) -> None:
    """The sub names the actor in the audit trail (stored)."""
    assert "sub must be a string of at most 255 characters" in refused(
        sign(ehr.ec_key, sub=value), ehr.issuers
    )


def test_non_numeric_exp_is_refused(ehr: Ehr) -> None:
    assert "exp claim must be a number" in refused(sign(ehr.ec_key, exp="soon"), ehr.issuers)


def test_replayed_jti_is_refused(ehr: Ehr) -> None:
    cache = MemoryJtiCache(clock=lambda: NOW)
    token = sign(ehr.ec_key, jti="once-only")
    assert verify(token, ehr.issuers, cache).jti == "once-only"
    with pytest.raises(CdsAuthError, match=r"^token replayed$"):
        verify(token, ehr.issuers, cache)
    # a fresh token that reuses the jti is a replay too
    with pytest.raises(CdsAuthError, match=r"^token replayed$"):
        verify(sign(ehr.rsa_key, alg="RS384", kid="rsa-1", jti="once-only"), ehr.issuers, cache)


# --- the replay cache -------------------------------------------------------------------------


def test_jti_cache_forgets_only_after_expiry() -> None:
    clock = [1000.0]
    cache = MemoryJtiCache(clock=lambda: clock[0])
    until = datetime.fromtimestamp(1100, UTC)
    assert cache("iss-a", "j", until) is True
    assert cache("iss-a", "j", until) is False
    assert cache("iss-b", "j", until) is True  # jtis are per issuer
    clock[0] = 1099.0
    assert cache("iss-a", "j", until) is False
    assert len(cache) == 2
    clock[0] = 1100.0
    assert len(cache) == 2  # purged on the next call, not before
    assert cache("iss-c", "k", until + timedelta(seconds=300)) is True
    assert len(cache) == 1
    assert cache("iss-a", "j", until + timedelta(seconds=300)) is True


def test_empty_jti_cache_is_truthy() -> None:
    cache = MemoryJtiCache()
    assert len(cache) == 0
    assert bool(cache) is True  # so `cache or default` keeps it


def test_jti_cache_wants_aware_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        MemoryJtiCache()("iss", "j", datetime(2030, 1, 1))


# --- the issuers file -------------------------------------------------------------------------


def write_issuers(path: Path, *entries: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"issuers": list(entries)}))
    return path


def entry(ehr: Ehr, **override: Any) -> dict[str, Any]:
    base = {"iss": ISS, "clinic": CLINIC, "jwks": ehr.issuer.jwks, "fhir_servers": [FHIR]}
    return {**base, **override}


def test_missing_issuers_file_means_no_issuers(tmp_path: Path) -> None:
    assert load_issuers(tmp_path / "absent.json") == {}


def test_issuers_file_loads_and_verifies(tmp_path: Path, ehr: Ehr) -> None:
    path = write_issuers(
        tmp_path / "issuers.json",
        entry(ehr, jku=[JKU]),
        entry(ehr, iss="https://other-ehr.example", clinic="south", fhir_servers=[]),
    )
    issuers = load_issuers(path)
    assert sorted(issuers) == [ISS, "https://other-ehr.example"]
    assert issuers[ISS].clinic == CLINIC
    assert issuers[ISS].fhir_servers == (FHIR,)
    assert issuers[ISS].jku == (JKU,)
    assert issuers["https://other-ehr.example"].clinic == "south"
    assert verify(sign(ehr.ec_key, headers={"jku": JKU}), issuers).clinic == CLINIC


def config_error(path: Path) -> str:
    with pytest.raises(CdsConfigError) as info:
        load_issuers(path)
    return str(info.value)


def test_private_ec_key_in_jwks_is_refused(tmp_path: Path, ehr: Ehr) -> None:
    private = {**ECAlgorithm.to_jwk(ehr.ec_key, as_dict=True), "kid": "ec-1"}
    assert "d" in private
    message = config_error(write_issuers(tmp_path / "i.json", entry(ehr, jwks={"keys": [private]})))
    assert "issuers[0].jwks.keys[0]" in message
    assert "private key member(s) d" in message
    assert private["d"] not in message  # the leaked secret is not repeated


def test_private_rsa_key_in_jwks_is_refused(tmp_path: Path, ehr: Ehr) -> None:
    private = {**RSAAlgorithm.to_jwk(ehr.rsa_key, as_dict=True), "kid": "rsa-1"}
    jwks = {"keys": [public_jwk(ehr.ec_key, "ec-1"), private]}
    message = config_error(write_issuers(tmp_path / "i.json", entry(ehr, jwks=jwks)))
    assert "issuers[0].jwks.keys[1]" in message
    assert "d, dp, dq, p, q, qi" in message


def test_oct_key_in_jwks_is_refused(tmp_path: Path, ehr: Ehr) -> None:
    oct_key = {"kty": "oct", "k": b64url(b"s" * 48), "kid": "shared"}
    message = config_error(write_issuers(tmp_path / "i.json", entry(ehr, jwks={"keys": [oct_key]})))
    assert "issuers[0].jwks.keys[0].kty" in message
    assert "'oct'" in message


@pytest.mark.parametrize("clinic", ["clinic one", "", "x" * 65, "klinik/ö", 7, ".", ".."])
def test_bad_clinic_id_is_refused(tmp_path: Path, ehr: Ehr, clinic: Any) -> None:
    path = write_issuers(tmp_path / "i.json", entry(ehr), entry(ehr, iss="b", clinic=clinic))
    message = config_error(path)
    assert "issuers[1].clinic" in message
    assert ID_RULE in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"iss": ""}, "issuers[0].iss"),
        ({"jwks": {"keys": []}}, "issuers[0].jwks: must be an object"),
        ({"fhir_servers": ["http://ehr.example/fhir"]}, "issuers[0].fhir_servers[0]"),
        ({"jku": "https://ehr.example/jwks"}, "issuers[0].jku: must be a list"),
        ({"tenant": "x"}, "issuers[0]: unknown field(s) tenant"),
    ],
)
def test_other_issuer_errors_name_entry_and_field(
    tmp_path: Path, ehr: Ehr, override: dict[str, Any], expected: str
) -> None:
    assert expected in config_error(write_issuers(tmp_path / "i.json", entry(ehr, **override)))


def test_p256_and_duplicate_kids_are_refused(tmp_path: Path, ehr: Ehr) -> None:
    p256 = public_jwk(ec.generate_private_key(ec.SECP256R1()), "p256")
    message = config_error(write_issuers(tmp_path / "a.json", entry(ehr, jwks={"keys": [p256]})))
    assert "crv P-384" in message
    twice = {"keys": [public_jwk(ehr.ec_key, "k"), public_jwk(ehr.rsa_key, "k")]}
    message = config_error(write_issuers(tmp_path / "b.json", entry(ehr, jwks=twice)))
    assert "issuers[0].jwks.keys[1].kid" in message


def test_duplicate_issuer_and_bad_json_are_refused(tmp_path: Path, ehr: Ehr) -> None:
    message = config_error(write_issuers(tmp_path / "a.json", entry(ehr), entry(ehr)))
    assert "issuers[1].iss" in message
    assert "listed twice" in message
    bad = tmp_path / "b.json"
    bad.write_text("{not json")
    assert "not valid JSON" in config_error(bad)


def test_trusted_issuer_checks_keys_when_built_directly(ehr: Ehr) -> None:
    private = {**ECAlgorithm.to_jwk(ehr.ec_key, as_dict=True), "kid": "ec-1"}
    with pytest.raises(CdsConfigError, match=r"jwks\.keys\[0\]: private key"):
        TrustedIssuer(ISS, CLINIC, {"keys": [private]})


# --- fhirServer -------------------------------------------------------------------------------


def test_fhir_server_only_when_allowlisted(ehr: Ehr) -> None:
    assert fhir_server_allowed(FHIR, ehr.issuer) is True
    assert fhir_server_allowed(FHIR + "/", ehr.issuer) is True
    assert fhir_server_allowed(None, ehr.issuer) is False
    for url in (
        "https://ehr.example/fhir/R4/../../admin",
        "https://ehr.example/fhir",
        "https://ehr.example.attacker.net/fhir/R4",
        "http://169.254.169.254/latest/meta-data",
        "http://ehr.example/fhir/R4",
    ):
        assert fhir_server_allowed(url, ehr.issuer) is False, url


# --- hook request -----------------------------------------------------------------------------


def hook_body(**override: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/123", "patientId": "A-1001"},
    }
    return {**body, **override}


def test_hook_request_parses_a_patient_view_call() -> None:
    req = HookRequest.model_validate(
        hook_body(
            context={"userId": "Practitioner/1", "patientId": "A-1001", "encounterId": "E.9"},
            fhirServer=FHIR,
            fhirAuthorization={"access_token": "secret-fhir-token", "token_type": "Bearer"},
            prefetch={"alliance": {"resourceType": "Bundle", "entry": []}},
        )
    )
    assert req.hookInstance == uuid.UUID("d1577c69-dfbe-44ad-ba6d-3e05e953b2ea")
    assert req.context.patientId == "A-1001"
    assert req.context.encounterId == "E.9"
    assert str(req.fhirServer) == FHIR
    assert "secret-fhir-token" not in repr(req)  # never reaches a log through repr


def test_hook_request_allows_extra_context_members() -> None:
    body = hook_body(context={"userId": "u", "patientId": "p", "selections": ["x"]})
    assert HookRequest.model_validate(body).context.model_extra == {"selections": ["x"]}


def test_hook_request_rejects_unknown_top_level_fields() -> None:
    with pytest.raises(ValidationError) as info:
        HookRequest.model_validate(hook_body(debug=True))
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(("debug",), "extra_forbidden")]


@pytest.mark.parametrize("hook", ["order-select", "patient-view ", "PATIENT-VIEW"])
def test_hook_request_rejects_other_hooks(hook: str) -> None:
    with pytest.raises(ValidationError) as info:
        HookRequest.model_validate(hook_body(hook=hook))
    assert [e["loc"] for e in info.value.errors()] == [("hook",)]


@pytest.mark.parametrize("patient", ["", "A 1001", "A/1001", "x" * 65, "Patient/1"])
def test_hook_request_rejects_bad_patient_ids(patient: str) -> None:
    with pytest.raises(ValidationError) as info:
        HookRequest.model_validate(hook_body(context={"userId": "u", "patientId": patient}))
    assert [e["loc"] for e in info.value.errors()] == [("context", "patientId")]


def test_hook_request_rejects_bad_instance_and_lone_authorization() -> None:
    with pytest.raises(ValidationError, match="hookInstance"):
        HookRequest.model_validate(hook_body(hookInstance="not-a-uuid"))
    with pytest.raises(ValidationError, match="fhirAuthorization requires fhirServer"):
        HookRequest.model_validate(hook_body(fhirAuthorization={"access_token": "t"}))
    with pytest.raises(ValidationError, match="at most 10 items"):
        HookRequest.model_validate(hook_body(prefetch={f"k{i}": {} for i in range(11)}))


# --- discovery --------------------------------------------------------------------------------


def test_discovery_describes_the_patient_view_service() -> None:
    doc = discovery()
    assert list(doc) == ["services"]
    [service] = doc["services"]
    assert service["hook"] == "patient-view"
    assert service["id"] == SERVICE_ID == "dropout-risk"
    assert service["title"] == "Psychotherapy dropout risk"
    assert service["description"]
    assert service["usageRequirements"]
    assert service["prefetch"] == {
        "alliance": "Observation?subject={{context.patientId}}&category=survey"
    }
    service["id"] = "changed"
    assert discovery()["services"][0]["id"] == "dropout-risk"  # callers get a copy


# --- cards ------------------------------------------------------------------------------------

CARD_UUID = "5d0a9e1c-0d3f-4a7c-9a43-1b2c3d4e5f60"
LINK = "https://risk.example/ui/clients/ZX-998877"


def result(level: str = "high", probability: float = 0.31, **override: Any) -> Prediction:
    """A Prediction as scoring gives one; `level` is set unchecked (the card checks it)."""
    base: dict[str, Any] = {
        "client_id": "ZX-998877",
        "probability": probability,
        "risk_level": "high",
        "landmark_session": 2,
        "model": {"version": "20261122-68131565", "sha256": "ab" * 32},
        "thresholds": {"moderate": 0.2, "high": 0.3},
        "factors": [
            {
                "code": "alliance_decline",
                "label": "Alliance fell from session 1 to 2 (WAI-SR 3.5 → 3.0)",
                "direction": "raises",
                "contribution": 0.07,
            },
            {
                "code": "symptoms_improving",
                "label": "Symptoms improved since intake (PHQ-9 18 → 12)",
                "direction": "lowers",
                "contribution": -0.035,
            },
        ],
        "suggested_actions": [
            {
                "code": "rupture_repair",
                "text": "Check in openly about the relationship.",
                "source": "Safran & Muran (rupture repair)",
            }
        ],
        "disclaimer": "Decision support, not a diagnosis.",
    }
    return replace(Prediction.from_json({**base, **override}), risk_level=level)


def test_card_for_a_high_risk() -> None:
    c = card(result(), LINK, CARD_UUID)
    assert c["summary"] == "High dropout risk (31%): Alliance fell from session 1 to 2"
    assert c["indicator"] == "critical"
    assert c["uuid"] == CARD_UUID
    assert c["source"] == {"label": "dropout-risk model 20261122-68131565"}
    assert c["links"] == [{"label": "Open in dropout-risk", "url": LINK, "type": "absolute"}]
    assert set(c) == {"uuid", "summary", "indicator", "detail", "source", "links"}


@pytest.mark.parametrize(
    ("level", "probability", "indicator", "start"),
    [
        ("low", 0.08, "info", "Low dropout risk (8%): Symptoms improved since intake"),
        ("moderate", 0.24, "warning", "Moderate dropout risk (24%): Alliance fell"),
        ("high", 0.57, "critical", "High dropout risk (57%): Alliance fell"),
    ],
)
def test_card_indicator_and_summary_per_level(
    level: str, probability: float, indicator: str, start: str
) -> None:
    c = card(result(level, probability), LINK, CARD_UUID)
    assert c["indicator"] == indicator
    assert c["summary"].startswith(start)
    assert len(c["summary"]) < 140


def test_summary_without_a_matching_factor_names_only_the_level() -> None:
    c = card(result(factors=[], suggested_actions=[]), LINK, CARD_UUID)
    assert c["summary"] == "High dropout risk (31%)"


def test_long_reason_is_cut_with_an_ellipsis_under_140() -> None:
    long_label = "Alliance fell sharply " + "and kept falling " * 20 + "(WAI-SR 5.0 → 2.0)"
    factor = {"code": "x", "label": long_label, "direction": "raises", "contribution": 0.2}
    summary = card(result(factors=[factor]), LINK, CARD_UUID)["summary"]
    assert len(summary) < 140
    assert len(summary) > 120  # the room is used, not thrown away
    assert summary.startswith("High dropout risk (31%): Alliance fell sharply and kept falling")
    assert summary.endswith("…")
    full = "High dropout risk (31%): " + long_label
    assert full.startswith(summary[:-1])
    assert full[len(summary) - 1] == " "  # cut at a word, not inside one


def test_summary_never_names_the_client() -> None:
    for level in ("low", "moderate", "high"):
        c = card(result(level), LINK, CARD_UUID)
        assert "ZX-998877" not in c["summary"]
        assert "ZX-998877" not in c["detail"]


def test_detail_lists_factors_actions_and_disclaimer() -> None:
    detail = card(result(), LINK, CARD_UUID)["detail"]
    assert "**Dropout risk 31% (high)** at session 2" in detail
    assert "moderate from 20%, high from 30%" in detail
    assert "- Alliance fell from session 1 to 2 (WAI-SR 3.5 → 3.0): raises risk, +7.0 points" in (
        detail
    )
    assert "- Symptoms improved since intake (PHQ-9 18 → 12): lowers risk, -3.5 points" in detail
    assert (
        "- Check in openly about the relationship. (Source: Safran & Muran (rupture repair))"
        in (detail)
    )
    assert "*Decision support, not a diagnosis.*" in detail
    assert detail.index("Alliance fell") < detail.index("Check in openly")


def test_detail_escapes_markdown_in_labels() -> None:
    factor = {"code": "x", "label": "<b>x</b> [y](z)", "direction": "raises", "contribution": 0.1}
    detail = card(result(factors=[factor]), LINK, CARD_UUID)["detail"]
    assert r"\<b\>x\</b\> \[y\](z)" in detail
    assert "<b>" not in detail


def test_card_refuses_an_unknown_level_and_bad_uuid() -> None:
    with pytest.raises(ValueError, match="risk_level"):
        card(result("extreme"), LINK, CARD_UUID)
    with pytest.raises(ValueError, match="badly formed"):
        card(result(), LINK, "not-a-uuid")


def test_cards_response_wraps_cards() -> None:
    c = card(result(), LINK, CARD_UUID)
    assert cards_response([c]) == {"cards": [c]}
    assert cards_response([]) == {"cards": []}
