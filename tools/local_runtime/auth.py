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

# The documented development default (README.md, "Tokens" and the settings table); never used
# outside a local run. The known, documented exception of the secrets scan (.ci/secrets): allowed
# on this line only, so any other copy of it, or any other secret, still fails the scan.
DEFAULT_SECRET = "local-development-secret-change-me"  # noqa: S105  # nosec B105  # pragma: allowlist secret
ISSUER = "wallet-local"
AUDIENCE = "wallet-api"
ADMIN_SCOPE = "wallet:admin"
ALGORITHM = "HS256"


class Unauthorized(Exception):
    pass


def secret() -> str:
    return os.environ.get("LOCAL_JWT_SECRET") or DEFAULT_SECRET


def issue_token(
    sub: str = "user-1",
    *,
    admin: bool = False,
    scope: str | None = None,
    ttl_seconds: int = 12 * 3600,
    key: str | None = None,
    **claims: Any,
) -> str:
    now = int(time.time())
    if scope is None:
        scope = f"{ADMIN_SCOPE} wallet:read" if admin else "wallet:read"
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "scope": scope,
        "iat": now,
        "exp": now + ttl_seconds,
        **claims,
    }
    return jwt.encode(payload, key or secret(), algorithm=ALGORITHM)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("The Authorization header is missing.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def verify(authorization: str | None) -> dict[str, Any]:
    """The verified claims, or Unauthorized with a reason safe to show the caller."""
    token = bearer_token(authorization)
    try:
        return jwt.decode(
            token,
            secret(),
            algorithms=[ALGORITHM],  # pinned: never let the token pick (alg=none, RS/HS confusion)
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired.") from exc
    except jwt.InvalidAudienceError as exc:
        raise Unauthorized("The token is not meant for this API (audience).") from exc
    except jwt.InvalidIssuerError as exc:
        raise Unauthorized("The token was not issued by a trusted issuer.") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"The token lacks the {exc.claim!r} claim.") from exc
    except jwt.InvalidSignatureError as exc:
        raise Unauthorized("The token signature is not valid.") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("The token is not valid.") from exc


def gateway_claims(claims: dict[str, Any]) -> dict[str, str]:
    """Claims as API Gateway's JWT authorizer hands them over: every value a string, arrays as
    "[a b]", numbers as their decimal text."""

    def render(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + " ".join(render(item) for item in value) + "]"
        if isinstance(value, dict):
            return json.dumps(value, separators=(",", ":"))
        return str(value)

    return {name: render(value) for name, value in claims.items()}


def token_scopes(claims: dict[str, Any]) -> set[str]:
    """The scopes API Gateway's JWT authorizer matches a route's `AuthorizationScopes` against: the
    `scope` claim (space-separated) or the `scp` claim (a list, or a space-separated string)."""
    scopes: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(item for item in value if isinstance(item, str))
    return scopes


def allowed(claims: dict[str, Any], route_scopes: list[str]) -> bool:
    """API Gateway lets a request through a route with scopes when the token has at least one."""
    return not route_scopes or bool(token_scopes(claims) & set(route_scopes))


def _problem(
    status: int, code: str, detail: str, request_id: str, *headers: tuple[str, str]
) -> apigw.Response:
    # Imported here: the layer is on sys.path once the function host has read the template.
    from wallet_core.http.problems import PROBLEM_JSON, render_problem

    body = render_problem(status, code, detail, request_id=request_id)
    return apigw.Response(
        status,
        [("Content-Type", PROBLEM_JSON), *headers, ("Apigw-Requestid", request_id)],
        body.encode(),
    )


def unauthorized_response(detail: str, request_id: str) -> apigw.Response:
    """The 401 in the same problem+json shape as every other error (rendered by the service's own
    wallet_core.http.problems), with the request id in the body and in Apigw-Requestid."""
    challenge = ("WWW-Authenticate", 'Bearer realm="wallet-api", error="invalid_token"')
    return _problem(401, "unauthorized", detail, request_id, challenge)


def forbidden_response(route_scopes: list[str], request_id: str) -> apigw.Response:
    """A valid token without any of the route's scopes: API Gateway answers 403 before the function
    runs (its body is `{"message":"Forbidden"}`; locally, like the 401, the problem shape)."""
    needed = " or ".join(route_scopes)
    return _problem(403, "forbidden", f"This route needs scope {needed}.", request_id)
