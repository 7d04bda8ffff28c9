"""A batch of provider events applied by one server-side call: wallet_apply_provider_events
(migrations/versions/0005_provider_event_batches.py), where the rules of every event type are. Here:
what the call is given for each record and what it answers, nothing else."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wallet_core.adapters.base import Repository
from wallet_core.adapters.repositories import system_account_id


@dataclass(frozen=True)
class Deposit:
    """deposit.settled: credit `amount` to the wallet named by id or by external_ref."""

    wallet_id: uuid.UUID | None
    external_ref: str | None
    amount: int
    currency: str
    reference: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Settlement:
    """withdrawal.settled: the provider paid the hold out (amount None: all that remains)."""

    hold_id: uuid.UUID
    amount: int | None
    currency: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PayoutFailure:
    """withdrawal.failed: void the hold."""

    hold_id: uuid.UUID


@dataclass(frozen=True)
class BalanceReport:
    """balance.reported: store the provider's balance next to the posted one."""

    wallet_id: uuid.UUID | None
    external_ref: str | None
    balance: int
    currency: str
    reported_at: datetime


@dataclass(frozen=True)
class Rejection:
    """An event known never to apply: recorded as rejected with this reason."""

    reason: str


Action = Deposit | Settlement | PayoutFailure | BalanceReport | Rejection


@dataclass(frozen=True)
class EventRecord:
    """One record of the call: the event's key and stored form, who acts, and what to do."""

    provider: str
    event_id: str
    type: str
    payload: dict[str, Any]
    created_by: str
    action: Action


@dataclass(frozen=True)
class RecordOutcome:
    """What the call answered for one record (see the function for each outcome)."""

    outcome: str
    reason: str | None
    transaction_id: uuid.UUID | None
    hold_id: uuid.UUID | None
    wallet_id: uuid.UUID | None
    amount: int | None
    currency: str | None
    ledger_balance: int | None
    row_id: uuid.UUID | None
    at: datetime


_APPLY_SQL = """
    SELECT r_outcome, r_reason, r_transaction_id, r_hold_id, r_wallet_id, r_amount, r_currency,
           r_ledger_balance, r_row_id, r_at
    FROM wallet_apply_provider_events(CAST(%(records)s AS jsonb))
"""


def _text(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def _parameters(action: Action) -> dict[str, Any]:
    match action:
        case Deposit():
            return {
                "kind": "deposit",
                "wallet_id": _text(action.wallet_id),
                "external_ref": action.external_ref,
                "amount": action.amount,
                "currency": action.currency,
                # System accounts have well-known ids: the function creates the currency's if missing.
                "system_account_id": str(system_account_id(action.currency)),
                "reference": action.reference,
                "description": action.description,
                "metadata": action.metadata,
            }
        case Settlement():
            return {
                "kind": "settlement",
                "hold_id": str(action.hold_id),
                "amount": action.amount,
                "currency": action.currency,
                "metadata": action.metadata,
            }
        case PayoutFailure():
            return {"kind": "failure", "hold_id": str(action.hold_id)}
        case BalanceReport():
            return {
                "kind": "balance",
                "wallet_id": _text(action.wallet_id),
                "external_ref": action.external_ref,
                "balance": action.balance,
                "currency": action.currency,
                "reported_at": action.reported_at.isoformat(),
            }
        case Rejection():
            return {"kind": "rejection", "reason": action.reason}
    raise AssertionError(f"no parameters for {type(action).__name__}")  # pragma: no cover


class EventBatchRepository(Repository):
    def apply(self, records: Sequence[EventRecord]) -> list[RecordOutcome]:
        """Apply the records in the open transaction, in order, in one round trip (with BEGIN when
        it starts the transaction). The caller commits; a failure of the call leaves the transaction
        unusable, as any failed statement does."""
        document = [
            {
                "provider": record.provider,
                "event_id": record.event_id,
                "type": record.type,
                "payload": record.payload,
                "created_by": record.created_by,
                **_parameters(record.action),
            }
            for record in records
        ]
        rows = self._session.fetch(_APPLY_SQL, {"records": json.dumps(document)})
        return [RecordOutcome(*row) for row in rows]
