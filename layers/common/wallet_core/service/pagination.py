"""Opaque keyset cursors: base64url JSON of the last item's sort key."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from wallet_core.domain import errors


def encode_cursor(position: list[Any]) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, size: int) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _invalid() from exc
    if not isinstance(position, list) or len(position) != size:
        raise _invalid()
    return position


def _invalid() -> errors.ValidationError:
    return errors.ValidationError(
        "The cursor is not valid.",
        errors=[{"field": "cursor", "message": "not a cursor returned by this API"}],
    )
