"""Money movements. Every one locks the wallets it touches (ascending id order, before inserting
anything that references them), checks the rules on the locked rows, then posts a balanced
transaction: wallet entries plus, for money entering or leaving, the currency's system account."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from wallet_core.domain import errors
from wallet_core.domain.models import NewTransaction, Posting, Transaction, TransactionKind, Wallet
from wallet_core.domain.money import MAX_BALANCE
from wallet_core.domain.principal import Principal
from wallet_core.service.access import require_admin
from wallet_core.service.wallets import UnitOfWork, lock_wallets


@dataclass(frozen=True)
class Memo:
    """What the caller says about a movement."""

    reference: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def movement(
        self,
        kind: TransactionKind,
        principal: Principal,
        amount: int,
        currency: str,
        *,
        source: uuid.UUID | None,
        destination: uuid.UUID | None,
    ) -> NewTransaction:
        """The transaction a caller's movement asks for, as the caller described it."""
        return NewTransaction(
            kind=kind,
            amount=amount,
            currency=currency,
            source_wallet_id=source,
            destination_wallet_id=destination,
            reference=self.reference,
            description=self.description,
            metadata=self.metadata,
            created_by=principal.subject,
        )


def post(uow: UnitOfWork, new: NewTransaction, legs: list[tuple[Wallet | None, int]]) -> Transaction:
    """Apply each leg to its (locked) wallet, then write wallets, transaction and entries together.
    Every movement that adds to a wallet comes through here, so the balance ceiling is checked
    here, on the locked rows, before any leg is applied (the caller rolls back on the error)."""
    for wallet, amount in legs:
        if wallet is not None and amount > 0 and wallet.balance + amount > MAX_BALANCE:
            raise errors.BalanceLimitExceededError()
    postings = []
    for wallet, amount in legs:
        if wallet is not None:
            wallet.balance += amount
            wallet.version += 1
        postings.append(Posting(wallet=wallet, amount=amount))
    return uow.ledger.post(new, postings)


def credit_wallet(
    uow: UnitOfWork, principal: Principal, wallet_id: uuid.UUID, amount: int, memo: Memo
) -> Transaction:
    return _across_the_edge(uow, principal, wallet_id, TransactionKind.CREDIT, amount, memo)


def debit_wallet(
    uow: UnitOfWork, principal: Principal, wallet_id: uuid.UUID, amount: int, memo: Memo
) -> Transaction:
    return _across_the_edge(uow, principal, wallet_id, TransactionKind.DEBIT, amount, memo)


def _across_the_edge(
    uow: UnitOfWork,
    principal: Principal,
    wallet_id: uuid.UUID,
    kind: TransactionKind,
    amount: int,
    memo: Memo,
) -> Transaction:
    """Money entering (a credit) or leaving (a debit) the ledger: the wallet moves against its
    currency's system account."""
    require_admin(principal)
    wallet = lock_wallets(uow, wallet_id)[wallet_id]
    if kind is TransactionKind.CREDIT:
        wallet.ensure_can_receive()
        source, destination, change = None, wallet.id, amount
    else:
        wallet.ensure_can_send()
        wallet.ensure_available(amount)
        source, destination, change = wallet.id, None, -amount
    new = memo.movement(kind, principal, amount, wallet.currency, source=source, destination=destination)
    return post(uow, new, [(wallet, change), (None, -change)])


TRANSFER_WALLET_NOT_FOUND = "The source or the destination wallet was not found."


def transfer(
    uow: UnitOfWork,
    principal: Principal,
    *,
    source_wallet_id: uuid.UUID,
    destination_wallet_id: uuid.UUID,
    amount: int,
    currency: str,
    memo: Memo,
) -> Transaction:
    """The transfer's rules, and the order they are checked in, are written once, in the server-side
    function that applies them: wallet_transfer, migrations/versions/0004_transfer_function.py. It
    claims the request's key, checks that a non-admin owns the source before locking anything, locks
    both wallets in id order, checks, posts and stores the response, in one round trip and one
    transaction that holds no lock while the network or the client works. Here: what each refusal
    means, as the same domain errors with the same texts as every other movement. The destination is
    anyone's, so no detail says anything about it (nor which of the two ids was not found)."""
    if source_wallet_id == destination_wallet_id:
        raise errors.SameWalletError()
    new = memo.movement(
        TransactionKind.TRANSFER,
        principal,
        amount,
        currency,
        source=source_wallet_id,
        destination=destination_wallet_id,
    )
    done = uow.ledger.transfer(new, owner=None if principal.is_admin else principal.subject)
    match done.outcome:
        case "posted":
            return done.transaction
        case "not_found":
            raise errors.NotFoundError(TRANSFER_WALLET_NOT_FOUND)
        case "source_currency":
            raise errors.CurrencyMismatchError(
                f"Wallet {source_wallet_id} holds {done.source_currency}, the operation is in {currency}."
            )
        case "destination_currency":
            raise errors.CurrencyMismatchError(f"The destination wallet does not take {currency}.")
        case "source_closed" | "destination_closed":
            raise errors.WalletClosedError()
        case "source_frozen":
            raise errors.WalletFrozenError()
        case "insufficient_funds":
            raise errors.InsufficientFundsError(
                f"Wallet {source_wallet_id} has {done.source_available} available, {amount} is needed."
            )
        case "balance_limit_exceeded":
            raise errors.BalanceLimitExceededError()
    raise AssertionError(f"wallet_transfer answered an unknown outcome: {done.outcome}")  # pragma: no cover


def get_transaction(uow: UnitOfWork, principal: Principal, transaction_id: uuid.UUID) -> Transaction:
    found = uow.ledger.get(transaction_id)
    if found is not None and not principal.is_admin:
        involved = [wid for wid in (found.source_wallet_id, found.destination_wallet_id) if wid]
        # Both wallets exist (entries reference them, and wallets are never deleted).
        owners = {wallet.owner_id for wid in involved if (wallet := uow.wallets.get(wid)) is not None}
        if principal.subject not in owners:
            found = None
    if found is None:
        raise errors.NotFoundError(f"Transaction {transaction_id} was not found.")
    return found


def reverse_transaction(
    uow: UnitOfWork, principal: Principal, transaction_id: uuid.UUID, *, reason: str | None
) -> Transaction:
    """Move the original amount back, at most once. Money that is gone stays gone: the reversal
    fails with insufficient_funds rather than pushing a wallet negative. Reversals are operator
    corrections, so they are allowed on frozen wallets (a freeze is often why one is needed)."""
    require_admin(principal)
    original = uow.ledger.get_for_update(transaction_id)
    if original is None:
        raise errors.NotFoundError(f"Transaction {transaction_id} was not found.")
    if original.reversed_by_transaction_id is not None:
        raise errors.AlreadyReversedError(
            f"Transaction {transaction_id} was already reversed by {original.reversed_by_transaction_id}."
        )
    if original.kind is TransactionKind.REVERSAL:
        raise errors.InvalidStateError("A reversal cannot itself be reversed; post a new movement instead.")

    # The reversal pays back from the original destination to the original source.
    payer_id, payee_id = original.destination_wallet_id, original.source_wallet_id
    locked = lock_wallets(uow, *[wid for wid in (payer_id, payee_id) if wid is not None])
    payer = locked.get(payer_id) if payer_id else None
    payee = locked.get(payee_id) if payee_id else None
    for wallet in (payer, payee):
        if wallet is not None:
            wallet.ensure_can_receive()  # closed wallets accept nothing, not even corrections
    if payer is not None:
        payer.ensure_available(original.amount)

    new = NewTransaction(
        kind=TransactionKind.REVERSAL,
        amount=original.amount,
        currency=original.currency,
        source_wallet_id=payer_id,
        destination_wallet_id=payee_id,
        reference=original.reference,
        description=reason,
        metadata=original.metadata,
        reverses_transaction_id=original.id,
        created_by=principal.subject,
    )
    return post(uow, new, [(payer, -original.amount), (payee, original.amount)])
