"""Expiry needs no job: a hold past expires_at stops counting on read, is released by the next write
on its wallet, and the sweep only records the final status for reports."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN, ALICE
from tests.support.lambda_runtime import FakeLambdaContext, load_handler, sample_event


@pytest.fixture
def expire(db):
    """Given step: move a hold's expiry into the past (no sleeping)."""

    def move(hold_id: str) -> None:
        db.execute("UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = %s", (hold_id,))

    return move


def _stored(db, wallet_id: str) -> tuple[int, int]:
    return db.execute("SELECT held, version FROM wallets WHERE id = %s", (wallet_id,)).fetchone()


def _hold_status(db, hold_id: str) -> str:
    return db.execute("SELECT status FROM holds WHERE id = %s", (hold_id,)).fetchone()[0]


def _sweep() -> dict:
    handler = load_handler("functions/hold_expiry_sweep")
    return handler(sample_event("hold_expiry_sweep"), FakeLambdaContext(function_name="hold_expiry_sweep"))


def test_an_expired_hold_no_longer_counts_on_read(api, db, expire, invariants):
    wallet = api.funded_wallet(1_000, ALICE)
    hold = api.create_hold(wallet["id"], 300).body
    kept = api.create_hold(wallet["id"], 100).body
    expire(hold["id"])

    read = api.get_wallet(wallet["id"])
    listed = api.call("wallet_list", "GET", "/v1/wallets", claims=ALICE).body["items"]
    hold_now = api.get_hold(hold["id"]).body

    assert (read["held"], read["available"]) == (100, 900)
    assert next(item for item in listed if item["id"] == wallet["id"])["held"] == 100
    assert hold_now["status"] == "expired"
    assert api.get_hold(kept["id"]).body["status"] == "active"
    assert _hold_status(db, hold["id"]) == "active"  # nothing has run: the read alone decided
    assert invariants() == []


def test_an_expired_hold_can_be_neither_captured_nor_voided(api, expire):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 300).body
    expire(hold["id"])

    capture = api.capture_hold(hold["id"], amount=1)
    void = api.void_hold(hold["id"])

    assert (capture.status, capture.code) == (409, "invalid_state")
    assert (void.status, void.code) == (409, "invalid_state")
    assert api.get_wallet(wallet["id"])["balance"] == 1_000


def test_the_next_write_on_the_wallet_releases_its_expired_holds_for_good(api, db, expire, invariants):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 800).body
    expire(hold["id"])
    held_before, version_before = _stored(db, wallet["id"])

    debit = api.call(
        "debit_create", "POST", f"/v1/wallets/{wallet['id']}/debits", claims=ADMIN, body={"amount": 900}
    )

    assert debit.status == 201, debit.body  # the expired 800 was available again
    assert held_before == 800
    held_after, version_after = _stored(db, wallet["id"])
    assert held_after == 0
    assert version_after == version_before + 2  # one for the release, one for the debit
    assert _hold_status(db, hold["id"]) == "expired"
    assert invariants() == []


def test_the_sweep_marks_due_holds_expired_in_batches(api, db, expire, invariants, clean_ledger):
    wallets = [api.funded_wallet(100) for _ in range(3)]
    due = [api.create_hold(wallet["id"], 40).body for wallet in wallets for _ in range(2)]
    alive = api.create_hold(wallets[0]["id"], 10).body
    for hold in due:
        expire(hold["id"])

    from wallet_core.adapters.uow import SqlUnitOfWork
    from wallet_core.service.holds import expire_due_holds

    # Two wallets per batch: the three wallets take two transactions.
    first = expire_due_holds(SqlUnitOfWork(), wallet_batch=2, max_batches=1)
    rest = _sweep()
    again = _sweep()

    assert (first.wallets, first.holds) == (2, 4)
    assert rest == {"wallets": 1, "holds": 2}
    assert again == {"wallets": 0, "holds": 0}
    assert {_hold_status(db, hold["id"]) for hold in due} == {"expired"}
    assert _hold_status(db, alive["id"]) == "active"
    assert [_stored(db, wallet["id"])[0] for wallet in wallets] == [10, 0, 0]
    assert invariants() == []
