"""GET /v1/wallets/{wallet_id}/balance-snapshots (functions/balance_snapshot_list): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import ADMIN, ALICE


def _list(api, wallet_id: str, claims=ADMIN, **query):
    return api.get(
        f"/v1/wallets/{wallet_id}/balance-snapshots",
        as_user=claims,
        query={key: str(value) for key, value in query.items()} or None,
    )


def test_balance_snapshots_are_listed_newest_first_in_stable_pages(api, ingestion):
    wallet = api.funded_wallet(100, ALICE)
    reported = []
    for balance in (100, 90, 120, 100, 80):
        body = ingestion.body("balance.reported", wallet_id=wallet["id"], balance=balance, currency="USD")
        ingestion.deliver(body)
        reported.append(body["event_id"])

    first = _list(api, wallet["id"], limit=2)
    second = _list(api, wallet["id"], limit=2, cursor=first.body["next_cursor"])
    third = _list(api, wallet["id"], limit=2, cursor=second.body["next_cursor"])

    pages = [page.body["items"] for page in (first, second, third)]
    assert [item["event_id"] for page in pages for item in page] == list(reversed(reported))
    assert third.body["next_cursor"] is None
    newest = pages[0][0]
    assert newest == {
        "id": newest["id"],
        "wallet_id": wallet["id"],
        "provider": ingestion.provider,
        "event_id": reported[-1],
        "currency": "USD",
        "reported_balance": 80,
        "ledger_balance": 100,
        "drift": -20,
        "reported_at": newest["reported_at"],
        "created_at": newest["created_at"],
    }


def test_balance_snapshots_are_for_admins_of_existing_wallets(api):
    wallet = api.funded_wallet(100, ALICE)

    assert _list(api, wallet["id"], claims=ALICE).code == "forbidden"
    assert _list(api, str(uuid.uuid4())).status == 404
    assert _list(api, wallet["id"]).body == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("cursor", ["not-a-cursor", "WyJ4Il0", "WyJub3QtYS1kYXRlIiwieCJd"])
def test_a_bad_cursor_is_a_validation_error(api, cursor):
    wallet = api.funded_wallet(1)

    result = _list(api, wallet["id"], cursor=cursor)

    assert (result.status, result.code) == (400, "validation_error")


def test_the_sample_event_lists_a_wallets_snapshots(api):
    from tests.support.lambda_runtime import FakeLambdaContext, load_handler, parse_result, sample_event

    wallet = api.funded_wallet(1)
    event = sample_event("balance_snapshot_list")
    event["rawPath"] = event["rawPath"].replace(event["pathParameters"]["wallet_id"], wallet["id"])
    event["requestContext"]["http"]["path"] = event["rawPath"]

    result = parse_result(load_handler("functions/balance_snapshot_list")(event, FakeLambdaContext()))

    assert (result.status, result.body) == (200, {"items": [], "next_cursor": None})
