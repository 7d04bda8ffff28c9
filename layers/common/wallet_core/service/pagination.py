"""Opaque keyset cursors: base64url JSON of the last item's sort key."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from wallet_core.domain import errors
from wallet_core.domain.models import Page


class CreatedItem(Protocol):
    id: uuid.UUID
    created_at: datetime


TimeKey = tuple[datetime, uuid.UUID]


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


def newest_first_page(
    fetch: Callable[[int, TimeKey | None], Sequence[CreatedItem]], *, limit: int, cursor: str | None
) -> Page:
    """One page of a list ordered by (created_at, id) descending; fetch(limit, after) reads it."""
    position = decode_cursor(cursor, 2)
    after = None
    if position is not None:
        try:
            after = (datetime.fromisoformat(position[0]), uuid.UUID(position[1]))
        except (TypeError, ValueError) as exc:
            raise _invalid() from exc
    found = fetch(limit + 1, after)
    items, more = list(found[:limit]), len(found) > limit
    next_cursor = encode_cursor([items[-1].created_at.isoformat(), str(items[-1].id)]) if more else None
    return Page(items=items, next_cursor=next_cursor)


def _invalid() -> errors.ValidationError:
    return errors.ValidationError(
        "The cursor is not valid.",
        errors=[{"field": "cursor", "message": "not a cursor returned by this API"}],
    )
