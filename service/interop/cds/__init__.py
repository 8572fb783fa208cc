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

The package, by the sections of the hook's life: limits (sizes, algorithms, errors), issuers
(the issuers file), client_jwt (verifying a call's token), hooks (the request), cards
(discovery and the answer). The routes are service.api.cds.
"""
