"""The caller, from the claims the HTTP API's JWT authorizer verified (or the local runtime did)."""

from __future__ import annotations

from typing import Any

from wallet_core.domain import errors
from wallet_core.domain.principal import Principal

# The subject is stored as it is (idempotency keys, wallet owners, created_by: varchar(255)).
MAX_SUBJECT_LENGTH = 255


def _scopes(raw: Any) -> frozenset[str]:
    """OAuth's scope claim is a space-separated list (RFC 8693 section 4.2). API Gateway renders a
    JSON array claim as "[a b]". Commas separate nothing: "wallet:read,wallet:admin" is one scope,
    which is not the admin scope."""
    if isinstance(raw, list):
        return frozenset(item for item in raw if isinstance(item, str))
    if isinstance(raw, str):
        if raw.startswith("[") and raw.endswith("]"):
            raw = raw[1:-1]
        return frozenset(raw.split())
    return frozenset()


def _storable(subject: str) -> bool:
    """1 to 255 characters, no C0/C1 control characters or DEL (PostgreSQL cannot store NUL; the
    others would forge lines in logs), and valid UTF-8 (no lone surrogates from a JSON escape)."""
    if not 1 <= len(subject) <= MAX_SUBJECT_LENGTH:
        return False
    if any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in subject):
        return False
    try:
        subject.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def principal_from_event(event: dict[str, Any]) -> Principal:
    """The verified caller. A subject the service could not store or trust is answered as a bad token
    (401 unauthorized, with a detail saying what is wrong), never passed on to the database."""
    claims = (((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}).get("claims")
    if not claims or not isinstance(claims, dict):
        raise errors.UnauthorizedError()
    subject = claims.get("sub")
    if not isinstance(subject, str) or not _storable(subject):
        raise errors.InvalidSubjectError()
    return Principal(subject=subject, scopes=_scopes(claims.get("scope")))
