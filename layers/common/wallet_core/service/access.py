"""Authorization rules shared by the use cases."""

from __future__ import annotations

import uuid

from wallet_core.domain import errors
from wallet_core.domain.models import Wallet
from wallet_core.domain.principal import Principal


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise errors.ForbiddenError()


def visible_wallet(wallet: Wallet | None, principal: Principal, wallet_id: uuid.UUID) -> Wallet:
    """Invisible wallets are answered exactly like missing ones: no enumeration."""
    if wallet is None or not principal.can_see_owner(wallet.owner_id):
        raise errors.NotFoundError(f"Wallet {wallet_id} was not found.")
    return wallet
