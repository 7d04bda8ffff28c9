"""The local stand-in for the HTTP API's JWT authorizer: HS256 tokens with a development secret.

In AWS the authorizer verifies the identity provider's tokens; locally we sign our own. The default
secret is public on purpose (it is in the README): it protects nothing but a developer's laptop.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jwt

from tools.local_runtime import apigw

# The documented development default (README.md, "Tokens"); never used outside a local run. The
# known, documented exception of the secrets scan (.ci/secrets): allowed on this line only.
DEFAULT_SECRET = "local-development-secret-change-me"  # noqa: S105  # nosec B105  # pragma: allowlist secret
ISSUER = "wallet-local"
AUDIENCE = "wallet-api"
ADMIN_SCOPE = "wallet:admin"
# Why a token is refused, in words safe to show the caller (the most specific PyJWT error first).
REASONS = {
    jwt.ExpiredSignatureError: "The token has expired.",
    jwt.InvalidAudienceError: "The token is not meant for this API (audience).",
    jwt.InvalidIssuerError: "The token was not issued by a trusted issuer.",
    jwt.InvalidSignatureError: "The token signature is not valid.",
    jwt.PyJWTError: "The token is not valid.",
}


class Unauthorized(Exception):
    pass


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
    """The verified claims, or Unauthorized with a reason safe to show the caller."""
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
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"The token lacks the {exc.claim!r} claim.") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized(next(text for kind, text in REASONS.items() if isinstance(exc, kind))) from exc


def gateway_claims(claims: dict[str, Any]) -> dict[str, str]:
    """Claims as API Gateway's JWT authorizer hands them over: every value a string, arrays as
    "[a b]", numbers as their decimal text."""

    def render(value: Any) -> str:
        if isinstance(value, list):
            return "[" + " ".join(map(render, value)) + "]"
        return json.dumps(value) if isinstance(value, bool | dict) else str(value)

    return {name: render(value) for name, value in claims.items()}


def allowed(claims: dict[str, Any], route_scopes: list[str]) -> bool:
    """API Gateway lets a request through a route with scopes when the token has at least one, in
    its `scope` claim (space-separated) or its `scp` claim (a list, or a space-separated string)."""
    scopes: set[str] = set()
    for value in (claims.get("scope"), claims.get("scp")):
        scopes.update(value.split() if isinstance(value, str) else value if isinstance(value, list) else [])
    return not route_scopes or bool(scopes & set(route_scopes))


def problem(status: int, detail: str, *headers: tuple[str, str]) -> apigw.Response:
    """The gateway's own 401 and 403, in the service's problem+json shape (rendered by
    wallet_core.http.problems, on sys.path once the host has read the template), with the request
    id in the body and in Apigw-Requestid."""
    from wallet_core.http.problems import PROBLEM_JSON, render_problem

    request_id = apigw.new_request_id()
    code = "unauthorized" if status == 401 else "forbidden"
    body = render_problem(status, code, detail, request_id=request_id).encode()
    return apigw.Response(
        status, [("Content-Type", PROBLEM_JSON), *headers, ("Apigw-Requestid", request_id)], body
    )


def check(authorization: str | None, route_scopes: list[str]) -> dict[str, str] | apigw.Response:
    """The claims to put in the event, or the 401 / 403 API Gateway answers before any function runs."""
    try:
        claims = verify(authorization)
    except Unauthorized as exc:
        challenge = ("WWW-Authenticate", 'Bearer realm="wallet-api", error="invalid_token"')
        return problem(401, str(exc), challenge)
    if not allowed(claims, route_scopes):  # a valid token without any of the route's scopes
        return problem(403, f"This route needs scope {' or '.join(route_scopes)}.")
    return gateway_claims(claims)
