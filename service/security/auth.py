"""Bearer API keys and scopes: `require` makes the check a route depends on (the routes' key
dependencies are service.api.deps; keys themselves: service.security.api_keys)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from service.security.api_keys import ApiKey
from service.security.key_store import DbKeyStore
from training.errors import DropoutRiskError


class Unauthenticated(DropoutRiskError):
    """Missing, malformed, unknown or revoked key: 401."""


class Forbidden(DropoutRiskError):
    """A valid key without the scope this endpoint needs: 403."""


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send the API key as 'Authorization: Bearer <key>'")
    return token.strip()


def require(*scopes: str) -> Callable[[Request], Awaitable[ApiKey]]:
    """A dependency that admits keys holding any of `scopes`. Async on purpose: a plain
    `def` dependency is run in a thread pool, which costs more than the check itself."""
    wanted = " or ".join(f"'{scope}'" for scope in scopes)

    async def check(request: Request) -> ApiKey:
        store: DbKeyStore = request.app.state.keys
        token = _token(request)
        found, key = store.cached(token)
        if not found:  # a database round trip: off the event loop
            key = await run_in_threadpool(store.verify, token)
        if key is None:
            raise Unauthenticated("the API key is not valid")
        if key.scopes.isdisjoint(scopes):
            raise Forbidden(f"this key lacks the {wanted} scope")
        request.state.key_id = key.key_id
        request.state.clinic = key.tenant  # whose champion serves it: service.api.deps
        return key

    return check
