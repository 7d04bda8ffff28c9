"""POST /v1/wallets/{wallet_id}/debits (functions/debit_create): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

from tests.conftest import ADMIN, ALICE


def test_a_debit_beyond_the_available_balance_is_refused_and_writes_nothing(api, db):
    wallet = api.funded_wallet(100, ALICE)
    entries_before = db.execute("SELECT count(*) FROM entries").fetchone()[0]

    result = api.post(f"/v1/wallets/{wallet['id']}/debits", {"amount": 101}, as_user=ADMIN)

    assert (result.status, result.code) == (422, "insufficient_funds")
    assert result.headers["content-type"] == "application/problem+json"
    assert db.execute("SELECT count(*) FROM entries").fetchone()[0] == entries_before
    assert api.get_wallet(wallet["id"])["balance"] == 100
