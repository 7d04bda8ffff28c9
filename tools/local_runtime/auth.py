"""The local stand-in for the HTTP API's JWT authorizer: HS256 tokens (PyJWT) with a development
secret. In AWS the authorizer verifies the identity provider's tokens; locally we sign our own. The
default secret is public on purpose (it is in the README): it protects nothing but a laptop."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jwt

# The documented development default (README.md, "Tokens"); never used outside a local run. The
# known, documented exception of the secrets scan (.ci/secrets): allowed on this line only.
DEFAULT_SECRET = "local-development-secret-change-me"  # noqa: S105  # nosec B105  # pragma: allowlist secret
ISSUER = "wallet-local"
AUDIENCE = "wallet-api"
ADMIN_SCOPE = "wallet:admin"


class Unauthorized(Exception):
    """401: no valid token (the message is safe to show the caller)."""


class Forbidden(Exception):
    """403: a valid token without any of the route's scopes."""


def secret() -> str:
    return os.environ.get("LOCAL_JWT_SECRET") or DEFAULT_SECRET


def issue_token(
    sub: str = "user-1", *, scope: str = "wallet:read", ttl_seconds: int = 12 * 3600, key: str | None = None
) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "scope": scope,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, key or secret(), algorithm="HS256")


def verify(authorization: str | None) -> dict[str, Any]:
    """The verified claims, or Unauthorized saying why in PyJWT's words."""
    if not authorization:
        raise Unauthorized("The Authorization header is missing.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
    try:
        return jwt.decode(
            token.strip(),
            secret(),
            algorithms=["HS256"],  # pinned: never let the token pick (alg=none, RS/HS confusion)
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"The token is not valid: {exc}.") from exc


def check(authorization: str | None, route_scopes: list[str]) -> dict[str, str]:
    """The claims as API Gateway's JWT authorizer hands them to the function (every value a string,
    arrays as "[a b]"), or Unauthorized / Forbidden. A route with scopes needs at least one of them
    in the token's `scope` claim (space-separated) or `scp` claim (a list or a string)."""
    claims = verify(authorization)
    scopes: set[str] = set()
    for value in (claims.get("scope"), claims.get("scp")):
        scopes.update(value.split() if isinstance(value, str) else value if isinstance(value, list) else [])
    if route_scopes and not scopes & set(route_scopes):
        raise Forbidden(f"This route needs scope {' or '.join(route_scopes)}.")

    def render(value: Any) -> str:
        if isinstance(value, list):
            return "[" + " ".join(map(render, value)) + "]"
        return json.dumps(value) if isinstance(value, bool | dict) else str(value)

    return {name: render(value) for name, value in claims.items()}
