"""Holds: authorize (reserve available money), capture (all or part, to a wallet or out of the
ledger), void (release the rest), and expiry.

Lock order, everywhere: the wallets (ascending id), then the hold. Every change to a hold happens
under its wallet's lock, and locking a wallet releases its due holds first, so a hold can never be
captured after it expired nor released twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from wallet_core.adapters.holds import HoldRepository
from wallet_core.config import get_settings
from wallet_core.domain import errors
from wallet_core.domain.models import (
    DEFAULT_HOLD_LIFETIME,
    Hold,
    HoldPurpose,
    HoldStatus,
    NewTransaction,
    Transaction,
    TransactionKind,
    Wallet,
)
from wallet_core.domain.principal import Principal
from wallet_core.service.access import require_admin
from wallet_core.service.ledger import post
from wallet_core.service.wallets import UnitOfWork, lock_wallets


class HoldUnitOfWork(UnitOfWork, Protocol):
    holds: HoldRepository


def _find(uow: HoldUnitOfWork, hold_id: uuid.UUID) -> Hold:
    hold = uow.holds.get(hold_id)
    if hold is None:
        raise errors.NotFoundError(f"Hold {hold_id} was not found.")
    return hold


def _active_hold(uow: HoldUnitOfWork, hold_id: uuid.UUID) -> Hold:
    """The hold, locked and re-read after its wallet's lock (which released it if it was due)."""
    hold = uow.holds.get_for_update(hold_id)
    if hold is None:  # pragma: no cover - holds are never deleted
        raise errors.NotFoundError(f"Hold {hold_id} was not found.")
    hold.ensure_active()
    return hold


def create_hold(
    uow: HoldUnitOfWork,
    principal: Principal,
    *,
    wallet_id: uuid.UUID,
    amount: int,
    reference: str | None = None,
    expires_at: datetime | None = None,
    purpose: HoldPurpose = HoldPurpose.PAYOUT,
    settlement_window: timedelta | None = None,
) -> Hold:
    """Reserve `amount`. A payout hold lives at least the provider's settlement window
    (PAYOUT_SETTLEMENT_WINDOW_HOURS): an earlier `expires_at` is refused rather than shortened
    silently, and the default lifetime stretches to the window if that is longer."""
    require_admin(principal)
    lifetime = DEFAULT_HOLD_LIFETIME
    if purpose is HoldPurpose.PAYOUT:
        window = get_settings().payout_settlement_window if settlement_window is None else settlement_window
        lifetime = max(lifetime, window)
        if expires_at is not None and expires_at < datetime.now(UTC) + window:
            hours = int(window.total_seconds() // 3600)
            raise errors.ValidationError(
                "A payout hold must not expire before the provider's settlement window.",
                errors=[
                    {
                        "field": "expires_at",
                        "message": f"a payout hold must live at least {hours} hours"
                        " (or use purpose reservation)",
                    }
                ],
            )
    wallet = lock_wallets(uow, wallet_id)[wallet_id]
    wallet.ensure_can_send()
    wallet.ensure_available(amount)
    hold = uow.holds.add(
        wallet_id=wallet.id,
        amount=amount,
        reference=reference,
        expires_at=expires_at,
        default_lifetime=lifetime,
        created_by=principal.subject,
        purpose=purpose,
    )
    wallet.held += amount
    wallet.version += 1
    uow.wallets.save(wallet)
    return hold


def get_hold(uow: HoldUnitOfWork, principal: Principal, hold_id: uuid.UUID) -> Hold:
    """Admins and the owner of the hold's wallet; everyone else gets not_found (no enumeration)."""
    hold = uow.holds.get(hold_id)
    if hold is not None and not principal.is_admin:
        wallet = uow.wallets.get(hold.wallet_id)
        if wallet is None or wallet.owner_id != principal.subject:
            hold = None
    if hold is None:
        raise errors.NotFoundError(f"Hold {hold_id} was not found.")
    return hold


def capture_hold(
    uow: HoldUnitOfWork,
    principal: Principal,
    hold_id: uuid.UUID,
    *,
    amount: int | None = None,
    destination_wallet_id: uuid.UUID | None = None,
) -> Transaction:
    """Move `amount` (default: all that remains) of the hold to the destination wallet, or out of
    the ledger when there is none. The money was reserved when the hold was made, so a capture is
    allowed from a wallet frozen since: a freeze stops new spending, not settlements in flight."""
    require_admin(principal)
    wallet_id = _find(uow, hold_id).wallet_id  # never changes: safe to read before locking
    if destination_wallet_id == wallet_id:
        raise errors.SameWalletError("A hold cannot be captured into its own wallet.")
    locked = lock_wallets(uow, wallet_id, *([destination_wallet_id] if destination_wallet_id else []))
    hold = _active_hold(uow, hold_id)
    captured = hold.remaining if amount is None else amount
    hold.ensure_covers(captured)
    source = locked[wallet_id]
    destination = locked[destination_wallet_id] if destination_wallet_id else None
    if destination is not None:
        destination.ensure_currency(source.currency)
        destination.ensure_can_receive()
    source.held -= captured
    return _post_capture(uow, principal, hold, source, destination, captured)


def _post_capture(
    uow: HoldUnitOfWork,
    principal: Principal,
    hold: Hold,
    source: Wallet,
    destination: Wallet | None,
    captured: int,
    metadata: dict[str, str] | None = None,
) -> Transaction:
    """Record `captured` on the hold and post it (source.held was already adjusted by the caller)."""
    hold.captured_amount += captured
    if hold.remaining == 0:
        hold.status = HoldStatus.CAPTURED
    uow.holds.save(hold)
    new = NewTransaction(
        kind=TransactionKind.HOLD_CAPTURE,
        amount=captured,
        currency=source.currency,
        source_wallet_id=source.id,
        destination_wallet_id=destination.id if destination else None,
        reference=hold.reference,
        metadata=metadata or {},
        hold_id=hold.id,
        created_by=principal.subject,
    )
    return post(uow, new, [(source, -captured), (destination, captured)])


def void_hold(uow: HoldUnitOfWork, principal: Principal, hold_id: uuid.UUID) -> Hold:
    """Release what the hold has not captured. Allowed on a frozen wallet: it only gives money back."""
    require_admin(principal)
    wallet_id = _find(uow, hold_id).wallet_id
    wallet = lock_wallets(uow, wallet_id)[wallet_id]
    hold = _active_hold(uow, hold_id)
    wallet.held -= hold.remaining
    wallet.version += 1
    hold.status = HoldStatus.VOIDED
    uow.wallets.save(wallet)
    return uow.holds.save(hold)


@dataclass(frozen=True)
class SweepResult:
    wallets: int
    holds: int


def expire_due_holds(uow: HoldUnitOfWork, *, wallet_batch: int = 100, max_batches: int = 50) -> SweepResult:
    """Mark due holds expired, a batch of wallets per transaction, so reports see the final status.
    Correctness never waits for this: reads and writes already treat due holds as expired."""
    wallets = holds = 0
    for _ in range(max_batches):
        with uow:
            released = uow.holds.expire_due(wallet_limit=wallet_batch)
            uow.commit()
        if not released:
            break
        wallets += len(released)
        holds += sum(wallet.expired_holds for wallet in released.values())
    return SweepResult(wallets=wallets, holds=holds)
