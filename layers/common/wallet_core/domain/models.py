"""Ledger records and the rules that decide what a wallet may do."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from wallet_core.domain import errors


class WalletStatus(enum.StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"


class TransactionKind(enum.StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"
    TRANSFER = "transfer"
    REVERSAL = "reversal"
    HOLD_CAPTURE = "hold_capture"


@dataclass
class Wallet:
    id: uuid.UUID
    owner_id: str
    currency: str
    status: WalletStatus
    balance: int
    held: int
    version: int
    external_ref: str | None
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime

    @property
    def available(self) -> int:
        return self.balance - self.held

    # The rules of the contract: frozen wallets still receive money; closed ones accept nothing.
    def ensure_can_receive(self) -> None:
        if self.status is WalletStatus.CLOSED:
            raise errors.WalletClosedError()

    def ensure_can_send(self) -> None:
        if self.status is WalletStatus.CLOSED:
            raise errors.WalletClosedError()
        if self.status is WalletStatus.FROZEN:
            raise errors.WalletFrozenError()

    def ensure_available(self, amount: int) -> None:
        if amount > self.available:
            raise errors.InsufficientFundsError(
                f"Wallet {self.id} has {self.available} available, {amount} is needed."
            )

    def ensure_currency(self, currency: str) -> None:
        if currency != self.currency:
            raise errors.CurrencyMismatchError(
                f"Wallet {self.id} holds {self.currency}, the operation is in {currency}."
            )


@dataclass
class Transaction:
    id: uuid.UUID
    kind: TransactionKind
    amount: int
    currency: str
    source_wallet_id: uuid.UUID | None
    destination_wallet_id: uuid.UUID | None
    reference: str | None
    description: str | None
    metadata: dict[str, str]
    created_at: datetime
    status: str = "posted"
    reverses_transaction_id: uuid.UUID | None = None
    reversed_by_transaction_id: uuid.UUID | None = None
    hold_id: uuid.UUID | None = None


@dataclass
class HistoryItem:
    transaction: Transaction
    entry_amount: int
    balance_after: int
    entry_id: int


@dataclass(frozen=True)
class Posting:
    """One leg of a transaction: a signed amount on a wallet (or on the currency's system account
    when wallet is None)."""

    wallet: Wallet | None
    amount: int


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None


@dataclass
class NewTransaction:
    kind: TransactionKind
    amount: int
    currency: str
    source_wallet_id: uuid.UUID | None
    destination_wallet_id: uuid.UUID | None
    reference: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    reverses_transaction_id: uuid.UUID | None = None
    hold_id: uuid.UUID | None = None
    created_by: str | None = None


# A hold lives 7 days unless the caller says otherwise, and at most 30: long enough for card and
# bank settlement, short enough that forgotten holds give the money back by themselves.
DEFAULT_HOLD_LIFETIME = timedelta(days=7)
MAX_HOLD_LIFETIME = timedelta(days=30)


class HoldStatus(enum.StrEnum):
    ACTIVE = "active"
    CAPTURED = "captured"
    VOIDED = "voided"
    EXPIRED = "expired"


class HoldPurpose(enum.StrEnum):
    # A payout's money leaves through the provider, which settles it within its settlement window:
    # such a hold must not lapse before that window ends. A reservation is a plain hold.
    PAYOUT = "payout"
    RESERVATION = "reservation"


@dataclass
class Hold:
    """Money reserved on a wallet: it counts in the wallet's `held` while active and unexpired.
    `status` is as of the reading transaction's clock: a hold past expires_at reads as expired."""

    id: uuid.UUID
    wallet_id: uuid.UUID
    amount: int
    captured_amount: int
    status: HoldStatus
    reference: str | None
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    purpose: HoldPurpose = HoldPurpose.PAYOUT

    @property
    def remaining(self) -> int:
        return self.amount - self.captured_amount

    def ensure_active(self) -> None:
        if self.status is not HoldStatus.ACTIVE:
            raise errors.InvalidStateError(f"Hold {self.id} is {self.status}, not active.")

    def ensure_covers(self, amount: int) -> None:
        if amount > self.remaining:
            raise errors.AmountExceedsHoldError(
                f"Hold {self.id} has {self.remaining} remaining, {amount} was asked for."
            )


@dataclass
class BalanceSnapshot:
    """A provider's reported balance next to the ledger's posted balance at that moment."""

    id: uuid.UUID
    wallet_id: uuid.UUID
    provider: str
    event_id: str
    currency: str
    reported_balance: int
    ledger_balance: int
    drift: int
    reported_at: datetime
    created_at: datetime


@dataclass
class UnresolvedSettlement:
    """A provider settlement the ledger could not post (the wallet could not cover it): the money has
    left at the provider, so it waits for an operator instead of being rejected."""

    id: uuid.UUID
    provider: str
    event_id: str
    hold_id: uuid.UUID
    wallet_id: uuid.UUID
    amount: int
    currency: str
    reason: str
    created_at: datetime
    resolved_at: datetime | None = None
    resolution: str | None = None
