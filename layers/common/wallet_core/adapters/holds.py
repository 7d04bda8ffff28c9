"""Holds: reservations on a wallet's available money, and their expiry.

A hold's money sits in wallets.held while the hold is active. Expiry needs no job: reads subtract
due holds on the fly (`DUE_HOLD_SQL`), and whoever locks a wallet first releases its due holds for good
(`release_due_holds`), so the stored `held` is exact for every write that follows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    Interval,
    case,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from wallet_core.adapters.base import Repository, from_row
from wallet_core.adapters.tables import holds, wallets
from wallet_core.domain.models import Hold, HoldPurpose, HoldStatus

# When a hold is due: still active and its expiry has come. Written once for every query here and
# in repositories.py (the raw ones name the table, so the text works in both). now() is the
# transaction's start: every statement of one transaction agrees on what is due.
DUE_HOLD_SQL = "(holds.status = 'active' AND holds.expires_at <= now())"


def _is_due() -> ColumnElement[bool]:
    return literal_column(DUE_HOLD_SQL, Boolean)


@dataclass(frozen=True)
class Released:
    """A wallet's row after its due holds were released."""

    held: int
    version: int
    updated_at: datetime
    expired_holds: int


# Marks the due holds of the given (already locked) wallets expired and takes what they still
# reserved out of wallets.held, one version bump per wallet: wallet_release_due_holds, written once
# in migrations/versions/0004_transfer_function.py (the transfer function releases through it too).
_RELEASE_DUE_SQL = text("SELECT * FROM wallet_release_due_holds(CAST(:wallet_ids AS uuid[]))")


def release_due_holds(connection: Connection, wallet_ids: list[uuid.UUID]) -> dict[uuid.UUID, Released]:
    rows = connection.execute(_RELEASE_DUE_SQL, {"wallet_ids": wallet_ids}).all()
    return {
        row.wallet_id: Released(
            held=row.held, version=row.version, updated_at=row.updated_at, expired_holds=row.expired_holds
        )
        for row in rows
    }


def _status_now() -> ColumnElement[str]:
    return case((_is_due(), HoldStatus.EXPIRED.value), else_=holds.c.status).label("status")


_HOLD_COLUMNS = (
    holds.c.id,
    holds.c.wallet_id,
    holds.c.amount,
    holds.c.captured_amount,
    holds.c.reference,
    holds.c.expires_at,
    holds.c.created_at,
    holds.c.updated_at,
    holds.c.purpose,
)


def _hold(row: Any) -> Hold:
    return from_row(Hold, row, status=HoldStatus, purpose=HoldPurpose)


class HoldRepository(Repository):
    def add(
        self,
        *,
        wallet_id: uuid.UUID,
        amount: int,
        reference: str | None,
        expires_at: datetime | None,
        default_lifetime: timedelta,
        created_by: str,
        purpose: HoldPurpose = HoldPurpose.PAYOUT,
    ) -> Hold:
        expiry = expires_at if expires_at is not None else func.now() + literal(default_lifetime, Interval)
        row = self._connection.execute(
            insert(holds)
            .values(
                id=uuid.uuid4(),
                wallet_id=wallet_id,
                amount=amount,
                captured_amount=0,
                status=HoldStatus.ACTIVE.value,
                reference=reference,
                expires_at=expiry,
                created_by=created_by,
                purpose=purpose.value,
                created_at=func.now(),
                updated_at=func.now(),
            )
            .returning(*_HOLD_COLUMNS, _status_now())
        ).one()
        return _hold(row)

    def get(self, hold_id: uuid.UUID) -> Hold | None:
        row = self._connection.execute(
            select(*_HOLD_COLUMNS, _status_now()).where(holds.c.id == hold_id)
        ).one_or_none()
        return _hold(row) if row else None

    def get_for_update(self, hold_id: uuid.UUID) -> Hold | None:
        """Lock the hold. Callers lock its wallet first: every change to a hold happens under its
        wallet's lock, which also released it if it was due."""
        row = self._connection.execute(
            select(*_HOLD_COLUMNS, _status_now()).where(holds.c.id == hold_id).with_for_update()
        ).one_or_none()
        return _hold(row) if row else None

    def save(self, hold: Hold) -> Hold:
        row = self._connection.execute(
            update(holds)
            .where(holds.c.id == hold.id)
            .values(captured_amount=hold.captured_amount, status=hold.status.value, updated_at=func.now())
            .returning(holds.c.updated_at)
        ).one()
        hold.updated_at = row.updated_at
        return hold

    def expire_due(self, *, wallet_limit: int) -> dict[uuid.UUID, Released]:
        """The sweep: lock up to `wallet_limit` wallets that have due holds (ascending id order, like
        every other locker) and release those holds."""
        due_wallets = (
            select(holds.c.wallet_id)
            .where(_is_due())
            .distinct()
            .order_by(holds.c.wallet_id)
            .limit(wallet_limit)
        )
        locked = list(
            self._connection.execute(
                select(wallets.c.id)
                .where(wallets.c.id.in_(due_wallets))
                .order_by(wallets.c.id)
                .with_for_update(key_share=True)
            ).scalars()
        )
        return release_due_holds(self._connection, locked) if locked else {}
