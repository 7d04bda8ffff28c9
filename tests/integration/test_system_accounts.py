"""A currency's system account exists for every posting in that currency, whatever became of the
transaction that first wrote it: a first posting that was rolled back (a refused request, a batch
transaction lost after its call, a lost connection) must not leave the next ones failing."""

from __future__ import annotations

import random
import string
import uuid

from wallet_core.adapters.event_batches import Deposit, EventBatchRepository
from wallet_core.adapters.uow import SqlUnitOfWork
from wallet_core.domain.principal import ADMIN_SCOPE, Principal
from wallet_core.service import ingestion, ledger, wallets
from wallet_core.service.ingestion import BatchItem, Disposition, EventReceipt, IngestionResult

OPERATOR = Principal(subject="operator-1", scopes=frozenset({ADMIN_SCOPE}))


def _unused_currency(db) -> str:
    """A code no wallet and no system account of the (session-wide) test database has yet: the
    postings below are the first ever in it."""
    while True:
        code = "".join(random.choices(string.ascii_uppercase, k=3))
        used = db.execute(
            "SELECT 1 FROM system_accounts WHERE currency = %(c)s UNION ALL SELECT 1 FROM wallets WHERE currency = %(c)s",
            {"c": code},
        ).fetchone()
        if used is None:
            return code


def _wallet(currency: str) -> uuid.UUID:
    with SqlUnitOfWork() as uow:
        wallet = wallets.create_wallet(uow, OPERATOR, currency=currency, owner_id="bob")
        uow.commit()
    return wallet.id


def _balance(db, wallet_id: uuid.UUID) -> int:
    return db.execute("SELECT balance FROM wallets WHERE id = %s", (wallet_id,)).fetchone()[0]


def _system_accounts(db, currency: str) -> int:
    return db.execute("SELECT count(*) FROM system_accounts WHERE currency = %s", (currency,)).fetchone()[0]


def test_a_rolled_back_first_credit_in_a_currency_does_not_break_the_next_one(database_url, db, invariants):
    currency = _unused_currency(db)
    wallet_id = _wallet(currency)

    with SqlUnitOfWork() as uow:  # never committed: rolled back, as a refused or failed request is
        ledger.credit_wallet(uow, OPERATOR, wallet_id, 5, ledger.Memo())
    assert _system_accounts(db, currency) == 0

    with SqlUnitOfWork() as uow:
        ledger.credit_wallet(uow, OPERATOR, wallet_id, 7, ledger.Memo())
        uow.commit()

    assert _balance(db, wallet_id) == 7
    assert _system_accounts(db, currency) == 1
    assert invariants() == []


def _receipt() -> EventReceipt:
    return EventReceipt(provider="acme-pay", event_id=f"evt-{uuid.uuid4()}", type="deposit.settled")


def test_a_batch_transaction_lost_after_the_first_credit_in_a_currency_does_not_break_its_records(
    database_url, db, invariants, monkeypatch
):
    currency = _unused_currency(db)
    wallet_id = _wallet(currency)
    call = EventBatchRepository.apply
    faults: list[int] = []

    def fails_once_after_the_call(repository, records):
        outcomes = call(repository, records)  # the credits written, the system account created
        if not faults:
            faults.append(len(records))
            raise RuntimeError("a fault after the call: the batch transaction is rolled back")
        return outcomes

    monkeypatch.setattr(EventBatchRepository, "apply", fails_once_after_the_call)
    credit = Deposit(wallet_id=wallet_id, external_ref=None, amount=7, currency=currency)

    outcomes = ingestion.ingest_batch(SqlUnitOfWork, [BatchItem(_receipt(), credit) for _ in range(2)])

    assert faults == [2]  # the batch transaction; then each record on its own
    assert [(type(o), getattr(o, "disposition", o)) for o in outcomes] == [
        (IngestionResult, Disposition.APPLIED)
    ] * 2
    assert _balance(db, wallet_id) == 14
    assert _system_accounts(db, currency) == 1
    assert invariants() == []
