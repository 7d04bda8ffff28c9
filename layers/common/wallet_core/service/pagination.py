"""Opaque keyset cursors: base64url JSON of the last item's sort key.

A cursor the server did not issue is a 400 on the `cursor` field, never a database error. They are
validated strictly rather than signed: a cursor is only a position in a list the caller is
allowed to read (every page re-checks access), so a hand-made one can reveal nothing, while a
signature would need a per-deployment secret to keep and rotate. Strictly means: canonical
base64url of canonical JSON (exactly what encode_cursor writes, so an altered or truncated cursor
does not decode to the same text), one of the two shapes the server issues ([entry id] and
[created_at, id]), every value in range (entry ids are positive bigints, times are aware ISO 8601,
ids canonical UUIDs)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from wallet_core.domain import errors
from wallet_core.domain.models import Page


class CreatedItem(Protocol):
    id: uuid.UUID
    created_at: datetime


TimeKey = tuple[datetime, uuid.UUID]

MAX_BIGINT = 2**63 - 1
# The shapes issued: history [entry id]; newest-first lists [created_at, id].
_SHAPES: dict[int, tuple[type, ...]] = {1: (int,), 2: (str, str)}


def encode_cursor(position: list[Any]) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, size: int) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError, RecursionError) as exc:
        raise _invalid() from exc
    if not isinstance(position, list) or len(position) != size or encode_cursor(position) != cursor:
        raise _invalid()
    for value, kind in zip(position, _SHAPES.get(size, ()), strict=False):
        if type(value) is not kind:  # not isinstance: true is an int to Python, never an entry id
            raise _invalid()
        if isinstance(value, int) and not 1 <= value <= MAX_BIGINT:  # type() was checked above
            raise _invalid()
    return position


def _time_key(position: list[Any]) -> TimeKey:
    try:
        created_at, item_id = datetime.fromisoformat(position[0]), uuid.UUID(position[1])
        created_at.astimezone(UTC)  # out of range once in UTC (year 1 east of Greenwich)?
    except (TypeError, ValueError, OverflowError) as exc:
        raise _invalid() from exc
    if created_at.tzinfo is None or created_at.isoformat() != position[0] or str(item_id) != position[1]:
        raise _invalid()
    return created_at, item_id


def newest_first_page(
    fetch: Callable[[int, TimeKey | None], Sequence[CreatedItem]], *, limit: int, cursor: str | None
) -> Page:
    """One page of a list ordered by (created_at, id) descending; fetch(limit, after) reads it."""
    position = decode_cursor(cursor, 2)
    after = _time_key(position) if position is not None else None
    found = fetch(limit + 1, after)
    items, more = list(found[:limit]), len(found) > limit
    next_cursor = encode_cursor([items[-1].created_at.isoformat(), str(items[-1].id)]) if more else None
    return Page(items=items, next_cursor=next_cursor)


def _invalid() -> errors.ValidationError:
    return errors.ValidationError(
        "The cursor is not valid.",
        errors=[{"field": "cursor", "message": "not a cursor returned by this API"}],
    )
