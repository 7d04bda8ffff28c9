"""The caller, from the claims the HTTP API's JWT authorizer verified (or the local runtime did)."""

from __future__ import annotations

from typing import Any

from wallet_core.domain import errors
from wallet_core.domain.principal import Principal


def _scopes(raw: Any) -> frozenset[str]:
    # API Gateway renders a JSON array claim as "[a b]"; a plain OAuth scope claim is "a b".
    if isinstance(raw, list):
        return frozenset(str(item) for item in raw)
    if isinstance(raw, str):
        return frozenset(raw.strip("[]").replace(",", " ").split())
    return frozenset()


def principal_from_event(event: dict[str, Any]) -> Principal:
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt", {}).get("claims") or {}
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise errors.UnauthorizedError()
    return Principal(subject=subject, scopes=_scopes(claims.get("scope")))
