"""Provider events (the permanent record that makes each (provider, event_id) apply at most once) and
the balance snapshots that balance.reported events leave behind."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from wallet_core.adapters.base import NewestFirst, Repository, from_row
from wallet_core.domain.models import BalanceSnapshot, UnresolvedSettlement

APPLIED = "applied"
REJECTED = "rejected"
UNRESOLVED = "unresolved"  # a settlement that could not be posted: waits for an operator


# Inserted unless (provider, event_id) exists. A twin delivery that holds the key uncommitted makes
# this wait: its commit turns ours into a duplicate, its rollback hands the key over to us.
_INSERT_SQL = """
    INSERT INTO provider_events (id, provider, event_id, type, payload, status, reason, received_at)
    VALUES (%(id)s, %(provider)s, %(event_id)s, %(type)s, CAST(%(payload)s AS jsonb), %(status)s, %(reason)s,
            now())
    ON CONFLICT ON CONSTRAINT provider_events_provider_event_key DO NOTHING
    RETURNING received_at
"""
# Planned afresh every time, like the idempotency key's completion (repositories._COMPLETE_SQL): a
# generic plan cached while the table was small would scan it whole instead of using the unique key.
_MARK_APPLIED_SQL = """
    UPDATE provider_events SET transaction_id = %(transaction_id)s, hold_id = %(hold_id)s, applied_at = now()
    WHERE provider = %(provider)s AND event_id = %(event_id)s
"""
_MARK_UNRESOLVED_SQL = """
    UPDATE provider_events SET status = 'unresolved', reason = %(reason)s, hold_id = %(hold_id)s
    WHERE provider = %(provider)s AND event_id = %(event_id)s
"""


class ProviderEventRepository(Repository):
    def _insert(
        self,
        provider: str,
        event_id: str,
        event_type: str,
        payload: dict[str, Any],
        *,
        status: str,
        reason: str | None = None,
    ) -> bool:
        inserted = self._session.fetch(
            _INSERT_SQL,
            {
                "id": uuid.uuid4(),
                "provider": provider,
                "event_id": event_id,
                "type": event_type,
                "payload": json.dumps(payload),
                "status": status,
                "reason": reason,
            },
        )
        if inserted:
            self._session.now = inserted[0][0]  # received_at = now(), the transaction's time
        return bool(inserted)

    def claim(self, provider: str, event_id: str, event_type: str, payload: dict[str, Any]) -> bool:
        """True if this transaction now owns the event (its effect follows in the same transaction);
        False if it was already recorded: a duplicate."""
        return self._insert(provider, event_id, event_type, payload, status=APPLIED)

    def mark_applied(
        self,
        provider: str,
        event_id: str,
        *,
        transaction_id: uuid.UUID | None,
        hold_id: uuid.UUID | None,
    ) -> None:
        """Sent with the commit (nothing reads it back before)."""
        self._session.defer(
            _MARK_APPLIED_SQL,
            {
                "provider": provider,
                "event_id": event_id,
                "transaction_id": transaction_id,
                "hold_id": hold_id,
            },
            prepare=False,
        )

    def mark_unresolved(self, provider: str, event_id: str, *, hold_id: uuid.UUID, reason: str) -> None:
        """The event is recorded (it never applies again) but its effect waits for an operator."""
        self._session.defer(
            _MARK_UNRESOLVED_SQL,
            {"provider": provider, "event_id": event_id, "hold_id": hold_id, "reason": reason},
            prepare=False,
        )

    def add_rejected(
        self, provider: str, event_id: str, event_type: str, payload: dict[str, Any], reason: str
    ) -> bool:
        """Record an event that can never apply. False if the key was recorded first by a twin."""
        return self._insert(provider, event_id, event_type, payload, status=REJECTED, reason=reason)


# The columns of both tables below are listed in the order of their models' fields.
_SNAPSHOT_COLUMNS = "id, wallet_id, provider, event_id, currency, reported_balance, ledger_balance, drift, reported_at, created_at"
# The ledger balance is read and the snapshot stored by one statement.
_ADD_SNAPSHOT_SQL = f"""
    INSERT INTO balance_snapshots ({_SNAPSHOT_COLUMNS})
    SELECT %(id)s, w.id, %(provider)s, %(event_id)s, %(currency)s, %(reported_balance)s, w.balance,
           %(reported_balance)s - w.balance, %(reported_at)s, now()
    FROM wallets AS w WHERE w.id = %(wallet_id)s
    RETURNING {_SNAPSHOT_COLUMNS}
"""  # noqa: S608  # nosec B608
_SNAPSHOTS_OF_WALLET = NewestFirst.of(
    f"SELECT {_SNAPSHOT_COLUMNS} FROM balance_snapshots AS s WHERE s.wallet_id = %(wallet_id)s",  # noqa: S608  # nosec B608
    "s",
)
_SETTLEMENT_COLUMNS = "id, provider, event_id, hold_id, wallet_id, amount, currency, reason, created_at, resolved_at, resolution"
_ADD_SETTLEMENT_SQL = f"""
    INSERT INTO unresolved_settlements (id, provider, event_id, hold_id, wallet_id, amount, currency, reason,
                                        created_at)
    VALUES (%(id)s, %(provider)s, %(event_id)s, %(hold_id)s, %(wallet_id)s, %(amount)s, %(currency)s,
            %(reason)s, now())
    RETURNING {_SETTLEMENT_COLUMNS}
"""  # noqa: S608  # nosec B608
_SETTLEMENTS = NewestFirst.of(
    f"SELECT {_SETTLEMENT_COLUMNS} FROM unresolved_settlements AS u WHERE true",  # noqa: S608  # nosec B608
    "u",
)


class BalanceSnapshotRepository(Repository):
    def add(
        self,
        *,
        wallet_id: uuid.UUID,
        provider: str,
        event_id: str,
        currency: str,
        reported_balance: int,
        reported_at: datetime,
    ) -> BalanceSnapshot:
        """Read the wallet's posted balance and store the snapshot in ONE statement: the ledger
        balance is exactly the one committed when the row was written, without blocking movements."""
        row = self._session.fetch(
            _ADD_SNAPSHOT_SQL,
            {
                "id": uuid.uuid4(),
                "wallet_id": wallet_id,
                "provider": provider,
                "event_id": event_id,
                "currency": currency,
                "reported_balance": reported_balance,
                "reported_at": reported_at,
            },
        )[0]
        return from_row(BalanceSnapshot, row)

    def list_for_wallet(
        self, wallet_id: uuid.UUID, *, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[BalanceSnapshot]:
        rows = _SNAPSHOTS_OF_WALLET.fetch(self._session, {"wallet_id": wallet_id}, limit=limit, after=after)
        return [from_row(BalanceSnapshot, row) for row in rows]


class UnresolvedSettlementRepository(Repository):
    """Settlements the ledger could not post, for operators (listed newest first)."""

    def add(
        self,
        *,
        provider: str,
        event_id: str,
        hold_id: uuid.UUID,
        wallet_id: uuid.UUID,
        amount: int,
        currency: str,
        reason: str,
    ) -> UnresolvedSettlement:
        row = self._session.fetch(
            _ADD_SETTLEMENT_SQL,
            {
                "id": uuid.uuid4(),
                "provider": provider,
                "event_id": event_id,
                "hold_id": hold_id,
                "wallet_id": wallet_id,
                "amount": amount,
                "currency": currency,
                "reason": reason,
            },
        )[0]
        return from_row(UnresolvedSettlement, row)

    def list(self, *, limit: int, after: tuple[datetime, uuid.UUID] | None) -> list[UnresolvedSettlement]:
        rows = _SETTLEMENTS.fetch(self._session, {}, limit=limit, after=after)
        return [from_row(UnresolvedSettlement, row) for row in rows]
