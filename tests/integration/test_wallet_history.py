"""GET /v1/wallets/{wallet_id}/transactions (functions/wallet_history): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

from tests.conftest import ADMIN, ALICE, BOB


def test_history_lists_entries_newest_first_with_running_balance(api):
    wallet = api.funded_wallet(1_000, ALICE)
    other = api.create_wallet(BOB)
    api.transfer(wallet["id"], other["id"], 300, claims=ALICE)
    api.post(f"/v1/wallets/{wallet['id']}/debits", {"amount": 200}, as_user=ADMIN)

    first = api.get(f"/v1/wallets/{wallet['id']}/transactions", as_user=ALICE, query={"limit": "2"})
    rest = api.get(
        f"/v1/wallets/{wallet['id']}/transactions",
        as_user=ALICE,
        query={"limit": "2", "cursor": first.body["next_cursor"]},
    )

    items = first.body["items"] + rest.body["items"]
    assert [(i["kind"], i["entry_amount"], i["balance_after"]) for i in items] == [
        ("debit", -200, 500),
        ("transfer", -300, 700),
        ("credit", 1_000, 1_000),
    ]
    assert rest.body["next_cursor"] is None
