"""RawSession (adapters/session.py) sends what it deferred before the next statement: the database
sees the statements in the order the code issued them, whichever of them waited."""

from __future__ import annotations

from wallet_core.adapters.uow import SqlUnitOfWork

_SET = "SELECT set_config('wallet.order', %(value)s, true)"  # local to the transaction
_GET = "SELECT current_setting('wallet.order', true)"


def test_a_statement_issued_after_a_deferred_one_in_an_open_transaction_runs_after_it(database_url):
    with SqlUnitOfWork() as uow:
        session = uow.wallets._session
        session.fetch(_SET, {"value": "first"})  # the transaction is open
        session.defer(_SET, {"value": "deferred"})

        seen = session.fetch(_GET, {})

    assert seen == [("deferred",)]
