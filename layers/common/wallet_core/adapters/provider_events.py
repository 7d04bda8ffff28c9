"""What provider events leave for operators, read back newest first: the balance snapshots of
balance.reported events and the settlements the ledger could not post. The server-side call that
applies the events writes them (migrations/versions/0005_provider_event_batches.py)."""

from __future__ import annotations

import uuid
from datetime import datetime

from wallet_core.adapters.base import NewestFirst, Repository, from_row
from wallet_core.domain.models import BalanceSnapshot, UnresolvedSettlement

# The columns of both tables below are listed in the order of their models' fields.
_SNAPSHOT_COLUMNS = "id, wallet_id, provider, event_id, currency, reported_balance, ledger_balance, drift, reported_at, created_at"
_SNAPSHOTS_OF_WALLET = NewestFirst.of(
    f"SELECT {_SNAPSHOT_COLUMNS} FROM balance_snapshots AS s WHERE s.wallet_id = %(wallet_id)s",  # noqa: S608  # nosec B608
    "s",
)
_SETTLEMENT_COLUMNS = "id, provider, event_id, hold_id, wallet_id, amount, currency, reason, created_at, resolved_at, resolution"
_SETTLEMENTS = NewestFirst.of(
    f"SELECT {_SETTLEMENT_COLUMNS} FROM unresolved_settlements AS u WHERE true",  # noqa: S608  # nosec B608
    "u",
)


class BalanceSnapshotRepository(Repository):
    def list_for_wallet(
        self, wallet_id: uuid.UUID, *, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[BalanceSnapshot]:
        rows = _SNAPSHOTS_OF_WALLET.fetch(self._session, {"wallet_id": wallet_id}, limit=limit, after=after)
        return [from_row(BalanceSnapshot, row) for row in rows]


class UnresolvedSettlementRepository(Repository):
    """Settlements the ledger could not post, for operators (listed newest first)."""

    def list(self, *, limit: int, after: tuple[datetime, uuid.UUID] | None) -> list[UnresolvedSettlement]:
        rows = _SETTLEMENTS.fetch(self._session, {}, limit=limit, after=after)
        return [from_row(UnresolvedSettlement, row) for row in rows]
