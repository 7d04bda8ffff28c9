"""Domain results as the contract's JSON resources."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from wallet_core.domain.models import (
    BalanceSnapshot,
    HistoryItem,
    Hold,
    Page,
    Transaction,
    UnresolvedSettlement,
    Wallet,
)


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def wallet_resource(wallet: Wallet) -> dict[str, Any]:
    return {
        "id": str(wallet.id),
        "owner_id": wallet.owner_id,
        "currency": wallet.currency,
        "status": wallet.status.value,
        "balance": wallet.balance,
        "held": wallet.held,
        "available": wallet.available,
        "version": wallet.version,
        "external_ref": wallet.external_ref,
        "metadata": wallet.metadata,
        "created_at": timestamp(wallet.created_at),
        "updated_at": timestamp(wallet.updated_at),
    }


def transaction_resource(transaction: Transaction) -> dict[str, Any]:
    return {
        "id": str(transaction.id),
        "kind": transaction.kind.value,
        "status": transaction.status,
        "amount": transaction.amount,
        "currency": transaction.currency,
        "source_wallet_id": _id(transaction.source_wallet_id),
        "destination_wallet_id": _id(transaction.destination_wallet_id),
        "reference": transaction.reference,
        "description": transaction.description,
        "metadata": transaction.metadata,
        "reverses_transaction_id": _id(transaction.reverses_transaction_id),
        "reversed_by_transaction_id": _id(transaction.reversed_by_transaction_id),
        "created_at": timestamp(transaction.created_at),
    }


def history_item_resource(item: HistoryItem) -> dict[str, Any]:
    return {
        **transaction_resource(item.transaction),
        "entry_amount": item.entry_amount,
        "balance_after": item.balance_after,
    }


def hold_resource(hold: Hold) -> dict[str, Any]:
    return {
        "id": str(hold.id),
        "wallet_id": str(hold.wallet_id),
        "amount": hold.amount,
        "captured_amount": hold.captured_amount,
        "status": hold.status.value,
        "reference": hold.reference,
        "expires_at": timestamp(hold.expires_at),
        "purpose": hold.purpose.value,
        "created_at": timestamp(hold.created_at),
        "updated_at": timestamp(hold.updated_at),
    }


def balance_snapshot_resource(snapshot: BalanceSnapshot) -> dict[str, Any]:
    return {
        "id": str(snapshot.id),
        "wallet_id": str(snapshot.wallet_id),
        "provider": snapshot.provider,
        "event_id": snapshot.event_id,
        "currency": snapshot.currency,
        "reported_balance": snapshot.reported_balance,
        "ledger_balance": snapshot.ledger_balance,
        "drift": snapshot.drift,
        "reported_at": timestamp(snapshot.reported_at),
        "created_at": timestamp(snapshot.created_at),
    }


def unresolved_settlement_resource(settlement: UnresolvedSettlement) -> dict[str, Any]:
    return {
        "id": str(settlement.id),
        "provider": settlement.provider,
        "event_id": settlement.event_id,
        "hold_id": str(settlement.hold_id),
        "wallet_id": str(settlement.wallet_id),
        "amount": settlement.amount,
        "currency": settlement.currency,
        "reason": settlement.reason,
        "created_at": timestamp(settlement.created_at),
        "resolved_at": timestamp(settlement.resolved_at) if settlement.resolved_at else None,
        "resolution": settlement.resolution,
    }


def page_resource(page: Page, present: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    return {"items": [present(item) for item in page.items], "next_cursor": page.next_cursor}


def to_json(resource: dict[str, Any]) -> str:
    return json.dumps(resource, separators=(",", ":"))


# Where each kind of resource lives: the Location of a 201 (the presenter names the resource).
_RESOURCE_PATHS = {
    wallet_resource: "/v1/wallets/{id}",
    transaction_resource: "/v1/transactions/{id}",
    hold_resource: "/v1/holds/{id}",
}


def resource_path(present: Any) -> str | None:
    """The path template ("/v1/wallets/{id}") of what `present` renders, or None."""
    return _RESOURCE_PATHS.get(present)
