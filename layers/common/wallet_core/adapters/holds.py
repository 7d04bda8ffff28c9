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

from wallet_core.adapters.base import Repository, from_row
from wallet_core.adapters.session import RawSession
from wallet_core.domain.models import Hold, HoldPurpose, HoldStatus

# When a hold is due: still active and its expiry has come. Written once for every query here and
# in repositories.py (they name the table `holds`, so the text works in all of them). now() is the
# transaction's start: every statement of one transaction agrees on what is due.
DUE_HOLD_SQL = "(holds.status = 'active' AND holds.expires_at <= now())"


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
_RELEASE_DUE_SQL = """
    SELECT wallet_id, held, version, updated_at, expired_holds
    FROM wallet_release_due_holds(CAST(%(wallet_ids)s AS uuid[]))
"""


def release_due_holds(session: RawSession, wallet_ids: list[uuid.UUID]) -> dict[uuid.UUID, Released]:
    rows = session.fetch(_RELEASE_DUE_SQL, {"wallet_ids": wallet_ids})
    return {row[0]: Released(*row[1:]) for row in rows}


# A hold's columns in the order of Hold's fields, its status as of now (a due hold reads expired).
# (The f-strings here put in DUE_HOLD_SQL and this list, constants: no input ever reaches the text.)
_HOLD_COLUMNS = f"""
    id, wallet_id, amount, captured_amount,
    CASE WHEN {DUE_HOLD_SQL} THEN 'expired' ELSE status END AS status,
    reference, expires_at, created_at, updated_at, purpose
"""
_INSERT_SQL = f"""
    INSERT INTO holds (id, wallet_id, amount, captured_amount, status, reference, expires_at, created_by,
                       purpose, created_at, updated_at)
    VALUES (%(id)s, %(wallet_id)s, %(amount)s, 0, 'active', %(reference)s,
            coalesce(CAST(%(expires_at)s AS timestamptz), now() + CAST(%(lifetime)s AS interval)),
            %(created_by)s, %(purpose)s, now(), now())
    RETURNING {_HOLD_COLUMNS}
"""  # noqa: S608  # nosec B608
_GET_SQL = f"SELECT {_HOLD_COLUMNS} FROM holds WHERE id = %(id)s"  # noqa: S608  # nosec B608
_LOCK_SQL = _GET_SQL + " FOR UPDATE"
_SAVE_SQL = """
    UPDATE holds SET captured_amount = %(captured_amount)s, status = %(status)s, updated_at = now()
    WHERE id = %(id)s
    RETURNING updated_at
"""
# Up to `limit` wallets with due holds, locked in ascending id order like every other locker.
_LOCK_DUE_WALLETS_SQL = f"""
    SELECT w.id FROM wallets AS w
    WHERE w.id IN (
        SELECT DISTINCT holds.wallet_id FROM holds WHERE {DUE_HOLD_SQL}
        ORDER BY holds.wallet_id LIMIT %(limit)s
    )
    ORDER BY w.id
    FOR NO KEY UPDATE
"""  # noqa: S608  # nosec B608


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
        row = self._session.fetch(
            _INSERT_SQL,
            {
                "id": uuid.uuid4(),
                "wallet_id": wallet_id,
                "amount": amount,
                "reference": reference,
                "expires_at": expires_at,
                "lifetime": default_lifetime,
                "created_by": created_by,
                "purpose": purpose.value,
            },
        )[0]
        return _hold(row)

    def get(self, hold_id: uuid.UUID) -> Hold | None:
        row = self._session.fetch_one(_GET_SQL, {"id": hold_id})
        return _hold(row) if row else None

    def get_for_update(self, hold_id: uuid.UUID) -> Hold | None:
        """Lock the hold. Callers lock its wallet first: every change to a hold happens under its
        wallet's lock, which also released it if it was due."""
        row = self._session.fetch_one(_LOCK_SQL, {"id": hold_id})
        return _hold(row) if row else None

    def save(self, hold: Hold) -> Hold:
        (hold.updated_at,) = self._session.fetch(
            _SAVE_SQL,
            {"id": hold.id, "captured_amount": hold.captured_amount, "status": hold.status.value},
        )[0]
        return hold

    def expire_due(self, *, wallet_limit: int) -> dict[uuid.UUID, Released]:
        """The sweep: lock up to `wallet_limit` wallets that have due holds (ascending id order, like
        every other locker) and release those holds."""
        locked = [row[0] for row in self._session.fetch(_LOCK_DUE_WALLETS_SQL, {"limit": wallet_limit})]
        return release_due_holds(self._session, locked) if locked else {}
