"""What a CDS call may be: the service's id and hook, the sizes, lifetimes and algorithms
it accepts, and the two errors of this package.
"""

from __future__ import annotations

from training.errors import DropoutRiskError

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


class CdsConfigError(DropoutRiskError):
    """The trusted-issuers file is unreadable or breaks a rule; names entry, field, rule."""


class CdsAuthError(DropoutRiskError):
    """A CDS call is refused: 401. The message is a fixed reason and never quotes the token."""
