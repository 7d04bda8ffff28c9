"""POST /v1/wallets/{wallet_id}/credits (functions/credit_create): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

import uuid

from tests.conftest import ADMIN, ALICE


def test_credit_and_debit_move_money_against_the_system_account(api, db, invariants):
    wallet = api.create_wallet(ALICE)

    credit = api.credit(wallet["id"], 1_000)
    debit = api.post(
        f"/v1/wallets/{wallet['id']}/debits",
        {"amount": 400, "reference": "payout-1", "description": "cash out", "metadata": {"k": "v"}},
        as_user=ADMIN,
    )

    assert (credit.status, credit.body["kind"], credit.body["source_wallet_id"]) == (201, "credit", None)
    assert (debit.status, debit.body["kind"], debit.body["destination_wallet_id"]) == (201, "debit", None)
    assert (debit.body["reference"], debit.body["description"], debit.body["metadata"]) == (
        "payout-1",
        "cash out",
        {"k": "v"},
    )
    after = api.get_wallet(wallet["id"])
    assert (after["balance"], after["available"], after["version"]) == (600, 600, 3)
    system_entries = db.execute(
        "SELECT sum(amount) FROM entries WHERE transaction_id = ANY(%s) AND system_account_id IS NOT NULL",
        ([uuid.UUID(credit.body["id"]), uuid.UUID(debit.body["id"])],),
    ).fetchone()[0]
    assert system_entries == -600
    assert invariants() == []


def test_crediting_an_unknown_wallet_is_not_found(api):
    assert api.credit(str(uuid.uuid4()), 5).code == "not_found"
