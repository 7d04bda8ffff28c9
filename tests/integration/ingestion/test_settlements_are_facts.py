"""A withdrawal.settled means the money has left: it is never acknowledged as rejected because its
hold expired or was voided. It is posted when the wallet can cover it; otherwise it is held for an
operator (recorded, counted by a metric, listed for admins)."""

from __future__ import annotations

import json

import pytest


def _unresolved(db, provider: str, event_id: str):
    return db.execute(
        "SELECT hold_id, wallet_id, amount, currency, reason, resolved_at FROM unresolved_settlements"
        " WHERE provider = %s AND event_id = %s",
        (provider, event_id),
    ).fetchall()


def _emf(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]


def test_a_settlement_after_the_hold_expired_is_posted_and_the_money_cannot_be_spent_again(
    api, db, ingestion, recorded, expire, invariants
):
    # Given a payout hold of 1,000 on a wallet of 1,000 that expired before the provider settled
    wallet = api.funded_wallet(1_000)
    other = api.create_wallet()
    hold = api.create_hold(wallet["id"], 1_000).body
    expire(hold["id"])
    body = ingestion.body("withdrawal.settled", hold_id=hold["id"])

    # When the provider's settlement arrives
    assert ingestion.deliver(body) == []

    # Then it is posted out of the ledger, linked to the hold and the event
    status, reason, transaction_id, hold_id = recorded(ingestion.provider, body["event_id"])
    assert (status, reason, str(hold_id)) == ("applied", None, hold["id"])
    kind, amount, linked_hold, source = db.execute(
        "SELECT kind, amount, hold_id, source_wallet_id FROM transactions WHERE id = %s", (transaction_id,)
    ).fetchone()
    assert (kind, amount, str(linked_hold), str(source)) == ("hold_capture", 1_000, hold["id"], wallet["id"])
    after = api.get_wallet(wallet["id"])
    assert (after["balance"], after["held"], after["available"]) == (0, 0, 0)
    # and the same money cannot leave a second time
    assert api.transfer(wallet["id"], other["id"], 1_000).code == "insufficient_funds"
    assert invariants() == []


def test_a_settlement_of_a_voided_hold_is_posted_when_the_wallet_covers_it(
    api, ingestion, recorded, invariants
):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 400).body
    assert api.void_hold(hold["id"]).status == 200
    body = ingestion.body("withdrawal.settled", hold_id=hold["id"], amount=300, currency="USD")

    assert ingestion.deliver(body) == []

    assert recorded(ingestion.provider, body["event_id"])[0] == "applied"
    assert api.get_wallet(wallet["id"])["balance"] == 700
    assert api.get_hold(hold["id"]).body["captured_amount"] == 300
    assert invariants() == []


@pytest.fixture
def wallet_metrics(monkeypatch):
    """Metrics as in AWS: the service name of the template gives the `service` dimension."""
    from wallet_core.sqs.consumer import get_metrics

    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "wallet")
    get_metrics.cache_clear()
    yield
    monkeypatch.delenv("POWERTOOLS_SERVICE_NAME")
    get_metrics.cache_clear()


def test_a_settlement_the_wallet_cannot_cover_is_held_for_an_operator_and_counted(
    api, db, ingestion, recorded, expire, capsys, caplog, invariants, wallet_metrics
):
    # Given an expired hold whose money the user spent meanwhile
    wallet = api.funded_wallet(1_000)
    other = api.create_wallet()
    hold = api.create_hold(wallet["id"], 800).body
    expire(hold["id"])
    assert api.transfer(wallet["id"], other["id"], 900).status == 201
    capsys.readouterr()
    body = ingestion.body("withdrawal.settled", hold_id=hold["id"])

    # When the provider settles it
    failures = ingestion.deliver(body)

    # Then it is acknowledged, nothing is posted, and an operator finds it
    assert failures == []
    status, reason, transaction_id, hold_id = recorded(ingestion.provider, body["event_id"])
    assert (status, str(hold_id)) == ("unresolved", hold["id"])
    assert transaction_id is None
    assert "insufficient_funds" in reason
    rows = _unresolved(db, ingestion.provider, body["event_id"])
    assert [(str(r[0]), str(r[1]), r[2], r[3], r[5]) for r in rows] == [
        (hold["id"], wallet["id"], 800, "USD", None)
    ]
    assert api.get_wallet(wallet["id"])["balance"] == 100
    emf = _emf(capsys)
    assert [line["UnresolvedSettlements"] for line in emf if "UnresolvedSettlements" in line] in (
        [1.0],
        [[1.0]],
    )
    metric = next(line for line in emf if "UnresolvedSettlements" in line)
    assert metric["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert metric["service"] == "wallet"
    assert [r.levelname for r in caplog.records if "held for an operator" in r.getMessage()] == ["ERROR"]
    assert invariants() == []

    # And a redelivery is a duplicate: no second record, no second count
    assert ingestion.deliver(body) == []
    assert len(_unresolved(db, ingestion.provider, body["event_id"])) == 1
    assert "UnresolvedSettlements" not in json.dumps(_emf(capsys))


def test_a_settlement_above_what_the_hold_reserved_is_still_rejected(api, ingestion, recorded, expire):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 100).body
    expire(hold["id"])
    body = ingestion.body("withdrawal.settled", hold_id=hold["id"], amount=101)

    assert ingestion.deliver(body) == []

    assert recorded(ingestion.provider, body["event_id"])[1].startswith("amount_exceeds_hold")
    assert api.get_wallet(wallet["id"])["balance"] == 1_000


def test_a_payout_hold_cannot_expire_before_the_settlement_window(api, monkeypatch):
    from wallet_core.config import get_settings

    monkeypatch.setenv("PAYOUT_SETTLEMENT_WINDOW_HOURS", "48")
    get_settings.cache_clear()
    try:
        wallet = api.funded_wallet(100)
        from datetime import UTC, datetime, timedelta

        soon = (datetime.now(UTC) + timedelta(hours=24)).isoformat().replace("+00:00", "Z")
        later = (datetime.now(UTC) + timedelta(hours=49)).isoformat().replace("+00:00", "Z")

        too_soon = api.create_hold(wallet["id"], 10, expires_at=soon)
        payout = api.create_hold(wallet["id"], 10, expires_at=later)
        reservation = api.create_hold(wallet["id"], 10, expires_at=soon, purpose="reservation")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

    assert (too_soon.status, too_soon.code) == (400, "validation_error"), too_soon.body
    assert too_soon.body["errors"][0]["field"] == "expires_at"
    assert (payout.status, payout.body["purpose"]) == (201, "payout")
    assert (reservation.status, reservation.body["purpose"]) == (201, "reservation")
