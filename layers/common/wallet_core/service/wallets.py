"""Wallet use cases: open, read, list, history, and status changes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from wallet_core.adapters.repositories import LedgerRepository, WalletRepository
from wallet_core.domain import errors
from wallet_core.domain.models import HistoryItem, Page, Wallet, WalletStatus
from wallet_core.domain.principal import Principal
from wallet_core.service.access import require_admin, visible_wallet
from wallet_core.service.pagination import decode_cursor, encode_cursor, newest_first_page
from wallet_core.service.unit_of_work import Transactional


class UnitOfWork(Transactional, Protocol):
    wallets: WalletRepository
    ledger: LedgerRepository


def authorize_create_wallet(principal: Principal, *, owner_id: str | None, external_ref: str | None) -> None:
    """Anyone opens a wallet for themselves; only an admin opens one for another owner or links it
    to a provider account (external_ref): deposits follow that link, so a user who could set it
    could claim someone else's deposits. Checked before the insert, so a non-admin never learns
    whether a reference is already linked (external_ref_in_use is for admins only). The handler
    also runs it before the idempotency key is read, so a replay is authorized afresh."""
    if (owner_id is not None and owner_id != principal.subject) or external_ref is not None:
        require_admin(principal)


def create_wallet(
    uow: UnitOfWork,
    principal: Principal,
    *,
    currency: str,
    owner_id: str | None = None,
    external_ref: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Wallet:
    authorize_create_wallet(principal, owner_id=owner_id, external_ref=external_ref)
    return uow.wallets.add(
        owner_id=owner_id or principal.subject,
        currency=currency,
        external_ref=external_ref,
        metadata=metadata or {},
    )


def get_wallet(uow: UnitOfWork, principal: Principal, wallet_id: uuid.UUID) -> Wallet:
    return visible_wallet(uow.wallets.get(wallet_id), principal, wallet_id)


def list_wallets(
    uow: UnitOfWork, principal: Principal, *, owner_id: str | None, limit: int, cursor: str | None
) -> Page:
    owner = owner_id or principal.subject
    if owner != principal.subject:
        require_admin(principal)
    return newest_first_page(
        lambda n, after: uow.wallets.list_for_owner(owner, limit=n, after=after), limit=limit, cursor=cursor
    )


def wallet_history(
    uow: UnitOfWork, principal: Principal, wallet_id: uuid.UUID, *, limit: int, cursor: str | None
) -> Page:
    get_wallet(uow, principal, wallet_id)
    position = decode_cursor(cursor, 1)
    if position is not None and not isinstance(position[0], int):
        raise errors.ValidationError("The cursor is not valid.")
    found: list[HistoryItem] = uow.ledger.list_entries(
        wallet_id, limit=limit + 1, before_entry_id=position[0] if position else None
    )
    items, more = found[:limit], len(found) > limit
    return Page(items=items, next_cursor=encode_cursor([items[-1].entry_id]) if more else None)


def lock_wallets(uow: UnitOfWork, *wallet_ids: uuid.UUID) -> dict[uuid.UUID, Wallet]:
    """Lock the wallets (ascending id order, due holds released: see WalletRepository.get_for_update);
    every service that changes a wallet locks it through here, so a missing one reads the same."""
    locked = uow.wallets.get_for_update(wallet_ids)
    for wallet_id in wallet_ids:
        if wallet_id not in locked:
            raise errors.NotFoundError(f"Wallet {wallet_id} was not found.")
    return locked


def _locked_for_status_change(uow: UnitOfWork, principal: Principal, wallet_id: uuid.UUID) -> Wallet:
    require_admin(principal)
    wallet = lock_wallets(uow, wallet_id)[wallet_id]
    wallet.ensure_can_receive()
    return wallet


def _set_status(uow: UnitOfWork, wallet: Wallet, status: WalletStatus) -> Wallet:
    wallet.status = status
    wallet.version += 1
    return uow.wallets.save(wallet)


@dataclass(frozen=True)
class _Switch:
    """Freeze and unfreeze: each only from the state the other one leaves (`rule` says which)."""

    only_from: WalletStatus
    to: WalletStatus
    rule: str


_FREEZE = _Switch(WalletStatus.ACTIVE, WalletStatus.FROZEN, "only an active wallet can be frozen")
_UNFREEZE = _Switch(WalletStatus.FROZEN, WalletStatus.ACTIVE, "only a frozen wallet can be unfrozen")


def _switch_status(uow: UnitOfWork, principal: Principal, wallet_id: uuid.UUID, switch: _Switch) -> Wallet:
    wallet = _locked_for_status_change(uow, principal, wallet_id)
    if wallet.status is not switch.only_from:
        raise errors.InvalidStateError(f"Wallet {wallet_id} is {wallet.status}, {switch.rule}.")
    return _set_status(uow, wallet, switch.to)


def freeze_wallet(uow: UnitOfWork, principal: Principal, wallet_id: uuid.UUID) -> Wallet:
    return _switch_status(uow, principal, wallet_id, _FREEZE)


def unfreeze_wallet(uow: UnitOfWork, principal: Principal, wallet_id: uuid.UUID) -> Wallet:
    return _switch_status(uow, principal, wallet_id, _UNFREEZE)


def close_wallet(uow: UnitOfWork, principal: Principal, wallet_id: uuid.UUID) -> Wallet:
    wallet = _locked_for_status_change(uow, principal, wallet_id)
    if wallet.balance != 0 or wallet.held != 0:
        raise errors.InvalidStateError(
            f"Wallet {wallet_id} has balance {wallet.balance} and held {wallet.held}; both must be 0 to close."
        )
    return _set_status(uow, wallet, WalletStatus.CLOSED)
