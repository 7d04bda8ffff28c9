"""GET /v1/settlements/unresolved (functions/unresolved_settlement_list): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

from tests.conftest import ADMIN, ALICE


def test_admins_list_unresolved_settlements_and_users_get_403(api, db, ingestion, expire):
    wallet = api.funded_wallet(500)
    hold = api.create_hold(wallet["id"], 500).body
    expire(hold["id"])
    assert api.post(f"/v1/wallets/{wallet['id']}/debits", {"amount": 500}, as_user=ADMIN).status == 201
    body = ingestion.body("withdrawal.settled", hold_id=hold["id"])
    assert ingestion.deliver(body) == []

    page = api.get("/v1/settlements/unresolved", as_user=ADMIN)
    assert page.status == 200, page.body
    mine = [item for item in page.body["items"] if item["event_id"] == body["event_id"]]
    assert len(mine) == 1
    item = mine[0]
    assert (item["provider"], item["hold_id"], item["wallet_id"], item["amount"], item["currency"]) == (
        ingestion.provider,
        hold["id"],
        wallet["id"],
        500,
        "USD",
    )
    assert item["resolved_at"] is None

    forbidden = api.get("/v1/settlements/unresolved", as_user=ALICE)
    assert (forbidden.status, forbidden.code) == (403, "forbidden")


def test_unresolved_settlements_page_newest_first(api, db, ingestion, expire):
    events = []
    for _ in range(3):
        wallet = api.funded_wallet(10)
        hold = api.create_hold(wallet["id"], 10).body
        expire(hold["id"])
        api.post(f"/v1/wallets/{wallet['id']}/debits", {"amount": 10}, as_user=ADMIN)
        body = ingestion.body("withdrawal.settled", hold_id=hold["id"])
        assert ingestion.deliver(body) == []
        events.append(body["event_id"])

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        query = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/settlements/unresolved", as_user=ADMIN, query=query)
        assert page.status == 200, page.body
        seen += [item["event_id"] for item in page.body["items"]]
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    mine = [event_id for event_id in seen if event_id in events]
    assert mine == list(reversed(events))
