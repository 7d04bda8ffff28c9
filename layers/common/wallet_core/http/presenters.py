"""Domain results as the contract's JSON resources."""

from __future__ import annotations

import enum
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


def _json(value: Any) -> Any:
    """One attribute as the contract writes it: ids as strings, enums by value, times as timestamps."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return timestamp(value)
    return value


class _Fields:
    """A resource's fields, in the contract's order (the JSON keeps it), each read off the object."""

    def __init__(self, names: str) -> None:
        self.names = tuple(names.split())

    def render(self, value: Any) -> dict[str, Any]:
        return {name: _json(getattr(value, name)) for name in self.names}


_WALLET = _Fields(
    "id owner_id currency status balance held available version external_ref metadata created_at updated_at"
)
_TRANSACTION = _Fields(
    "id kind status amount currency source_wallet_id destination_wallet_id reference description metadata"
    " reverses_transaction_id reversed_by_transaction_id created_at"
)
_HOLD = _Fields(
    "id wallet_id amount captured_amount status reference expires_at purpose created_at updated_at"
)
_BALANCE_SNAPSHOT = _Fields(
    "id wallet_id provider event_id currency reported_balance ledger_balance drift reported_at created_at"
)
_UNRESOLVED_SETTLEMENT = _Fields(
    "id provider event_id hold_id wallet_id amount currency reason created_at resolved_at resolution"
)


def wallet_resource(wallet: Wallet) -> dict[str, Any]:
    return _WALLET.render(wallet)


def transaction_resource(transaction: Transaction) -> dict[str, Any]:
    return _TRANSACTION.render(transaction)


def history_item_resource(item: HistoryItem) -> dict[str, Any]:
    return {
        **transaction_resource(item.transaction),
        "entry_amount": item.entry_amount,
        "balance_after": item.balance_after,
    }


def hold_resource(hold: Hold) -> dict[str, Any]:
    return _HOLD.render(hold)


def balance_snapshot_resource(snapshot: BalanceSnapshot) -> dict[str, Any]:
    return _BALANCE_SNAPSHOT.render(snapshot)


def unresolved_settlement_resource(settlement: UnresolvedSettlement) -> dict[str, Any]:
    return _UNRESOLVED_SETTLEMENT.render(settlement)


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
