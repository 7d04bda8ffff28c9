"""Each provider event type applied once through the ingestion handler, and what happens to events
that can never apply, may apply later, or carry nothing to key them on."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ADMIN, BOB

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def _balance(api, wallet_id: str) -> int:
    return api.get_wallet(wallet_id)["balance"]


def test_deposit_settled_credits_the_wallet_once_as_the_provider(api, db, ingestion, recorded, invariants):
    wallet = api.create_wallet(BOB)
    body = ingestion.body(
        "deposit.settled", wallet_id=wallet["id"], amount=2_500, currency="USD", reference="TRX-1"
    )

    failures = ingestion.deliver(body)

    assert failures == []
    assert _balance(api, wallet["id"]) == 2_500
    status, reason, transaction_id, hold_id = recorded(ingestion.provider, body["event_id"])
    assert (status, reason, hold_id) == ("applied", None, None)
    kind, created_by, reference, metadata = db.execute(
        "SELECT kind, created_by, reference, metadata FROM transactions WHERE id = %s", (transaction_id,)
    ).fetchone()
    assert (kind, created_by, reference) == ("credit", f"provider:{ingestion.provider}", "TRX-1")
    assert metadata == {"provider": ingestion.provider, "event_id": body["event_id"]}
    assert invariants() == []


def test_deposit_settled_finds_the_wallet_by_external_ref(api, ingestion):
    ref = f"acct-{ingestion.provider}"
    wallet = api.create_wallet(ADMIN, owner_id="bob", external_ref=ref)

    failures = ingestion.deliver(
        ingestion.body("deposit.settled", external_ref=ref, amount=700, currency="USD")
    )

    assert failures == []
    assert _balance(api, wallet["id"]) == 700


def test_withdrawal_settled_captures_the_hold_out_of_the_ledger(api, ingestion, recorded, invariants):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 600).body
    partial = ingestion.body("withdrawal.settled", hold_id=hold["id"], amount=200, currency="USD")
    rest = ingestion.body("withdrawal.settled", hold_id=hold["id"])

    assert ingestion.deliver(partial) == []
    assert ingestion.deliver(rest) == []

    after = api.get_wallet(wallet["id"])
    assert (after["balance"], after["held"]) == (400, 0)
    assert api.get_hold(hold["id"]).body["status"] == "captured"
    assert str(recorded(ingestion.provider, rest["event_id"])[3]) == hold["id"]
    assert invariants() == []


def test_withdrawal_failed_voids_the_hold(api, ingestion, recorded):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 600).body
    body = ingestion.body("withdrawal.failed", hold_id=hold["id"], reason="beneficiary account closed")

    assert ingestion.deliver(body) == []

    assert api.get_hold(hold["id"]).body["status"] == "voided"
    assert api.get_wallet(wallet["id"])["available"] == 1_000
    assert recorded(ingestion.provider, body["event_id"])[:2] == ("applied", None)


def test_balance_reported_stores_a_snapshot_with_its_drift_and_emits_the_metric(
    api, db, ingestion, capsys, caplog
):
    wallet = api.funded_wallet(1_000)
    matching = ingestion.body("balance.reported", wallet_id=wallet["id"], balance=1_000, currency="USD")
    drifting = ingestion.body("balance.reported", wallet_id=wallet["id"], balance=1_250, currency="USD")

    assert ingestion.deliver(matching, drifting) == []

    rows = db.execute(
        "SELECT event_id, reported_balance, ledger_balance, drift FROM balance_snapshots WHERE wallet_id = %s",
        (wallet["id"],),
    ).fetchall()
    assert sorted(rows) == sorted(
        [(matching["event_id"], 1_000, 1_000, 0), (drifting["event_id"], 1_250, 1_000, 250)]
    )
    output = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    emf = [line for line in output if "_aws" in line]
    assert len(emf) == 1
    assert emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Wallet"
    assert sorted(emf[0]["BalanceDrift"]) == [0, 250]
    warnings = [r for r in caplog.records if r.getMessage() == "provider balance differs from the ledger"]
    assert [(r.levelname, r.drift) for r in warnings] == [("WARNING", 250)]


def test_the_metric_namespace_comes_from_the_environment(api, ingestion, capsys, monkeypatch):
    from wallet_core.sqs.consumer import get_metrics

    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "WalletStaging")
    get_metrics.cache_clear()
    wallet = api.funded_wallet(10)
    try:
        ingestion.deliver(
            ingestion.body("balance.reported", wallet_id=wallet["id"], balance=10, currency="USD")
        )
    finally:
        get_metrics.cache_clear()

    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "WalletStaging"


@pytest.mark.parametrize(
    ("make", "reason_starts"),
    [
        (
            lambda w, h: {"type": "deposit.settled", "wallet_id": w, "amount": 12.5, "currency": "USD"},
            "schema:",
        ),
        (
            lambda w, h: {"type": "deposit.settled", "wallet_id": w, "amount": "100", "currency": "USD"},
            "schema:",
        ),
        (lambda w, h: {"type": "deposit.settled", "wallet_id": w, "amount": 0, "currency": "USD"}, "schema:"),
        (
            lambda w, h: {"type": "deposit.settled", "wallet_id": w, "amount": 10**15 + 1, "currency": "USD"},
            "schema:",
        ),
        (lambda w, h: {"type": "deposit.settled", "wallet_id": w, "amount": 5, "currency": "usd"}, "schema:"),
        (lambda w, h: {"type": "deposit.settled", "wallet_id": w, "amount": 5, "currency": "XXX"}, "schema:"),
        (
            lambda w, h: {
                "type": "deposit.settled",
                "wallet_id": w,
                "external_ref": "x",
                "amount": 5,
                "currency": "USD",
            },
            "schema:",
        ),
        (lambda w, h: {"type": "deposit.settled", "amount": 5, "currency": "USD"}, "schema:"),
        (
            lambda w, h: {"type": "deposit.settled", "wallet_id": w, "amount": 5, "currency": "USD", "x": 1},
            "schema:",
        ),
        (lambda w, h: {"type": "refund.settled", "wallet_id": w}, "schema:"),
        (lambda w, h: {"wallet_id": w, "amount": 5}, "schema:"),
        (lambda w, h: {"type": "withdrawal.settled", "hold_id": "not-a-uuid"}, "schema:"),
        (
            lambda w, h: {"type": "balance.reported", "wallet_id": w, "balance": -1, "currency": "USD"},
            "schema:",
        ),
        (
            lambda w, h: {"type": "deposit.settled", "wallet_id": w, "amount": 5, "currency": "EUR"},
            "currency_mismatch",
        ),
        (
            lambda w, h: {"type": "balance.reported", "wallet_id": w, "balance": 5, "currency": "EUR"},
            "currency_mismatch",
        ),
        (lambda w, h: {"type": "withdrawal.settled", "hold_id": h, "amount": 501}, "amount_exceeds_hold"),
        (lambda w, h: {"type": "withdrawal.settled", "hold_id": h, "currency": "EUR"}, "currency_mismatch"),
    ],
)
def test_an_event_that_can_never_apply_is_recorded_as_rejected_and_acknowledged(
    api, ingestion, recorded, make, reason_starts
):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 500).body
    fields = make(wallet["id"], hold["id"])
    body = {**ingestion.body(fields.pop("type", "deposit.settled")), **fields}
    if "type" not in make(wallet["id"], hold["id"]):
        body.pop("type")

    failures = ingestion.deliver(body)

    assert failures == []
    status, reason, transaction_id, _ = recorded(ingestion.provider, body["event_id"])
    assert status == "rejected"
    assert reason.startswith(reason_starts), reason
    assert transaction_id is None
    after = api.get_wallet(wallet["id"])
    assert (after["balance"], after["held"]) == (1_000, 500)  # nothing applied, not even partly


def test_a_settlement_of_a_voided_hold_is_a_fact_but_failing_it_again_is_rejected(api, ingestion, recorded):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 500).body
    api.void_hold(hold["id"])
    settle = ingestion.body("withdrawal.settled", hold_id=hold["id"])
    fail_again = ingestion.body("withdrawal.failed", hold_id=hold["id"])

    assert ingestion.deliver(settle, fail_again) == []

    # The money left at the provider: posted (the wallet covers it), never rejected.
    assert recorded(ingestion.provider, settle["event_id"])[:1] == ("applied",)
    assert recorded(ingestion.provider, fail_again["event_id"])[1].startswith("invalid_state")
    assert api.get_wallet(wallet["id"])["balance"] == 500


def test_a_deposit_to_a_closed_wallet_is_rejected(api, ingestion, recorded):
    wallet = api.create_wallet(BOB)
    api.call("wallet_close", "POST", f"/v1/wallets/{wallet['id']}/close", claims=ADMIN)
    body = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=5, currency="USD")

    assert ingestion.deliver(body) == []

    assert recorded(ingestion.provider, body["event_id"])[1].startswith("wallet_closed")


@pytest.mark.parametrize(
    "raw",
    [
        "this is not json",
        "[1, 2, 3]",
        json.dumps({"provider": "acme", "type": "deposit.settled", "amount": 5}),
        json.dumps({"provider": "", "event_id": "e-1", "type": "deposit.settled"}),
        json.dumps({"provider": "acme", "event_id": 17, "type": "deposit.settled"}),
        json.dumps({"provider": "acme", "event_id": "e" * 256, "type": "deposit.settled"}),
    ],
)
def test_a_message_without_a_usable_key_is_logged_and_acknowledged(db, ingestion, raw, caplog):
    before = db.execute("SELECT count(*) FROM provider_events").fetchone()[0]

    failures = ingestion.deliver(raw)

    assert failures == []
    assert db.execute("SELECT count(*) FROM provider_events").fetchone()[0] == before
    assert [r.levelname for r in caplog.records if "without a record" in r.getMessage()] == ["ERROR"]


def test_events_about_records_that_do_not_exist_yet_are_retried_then_apply(api, ingestion, recorded):
    ref = f"late-{ingestion.provider}"
    deposit = ingestion.body("deposit.settled", external_ref=ref, amount=300, currency="USD")
    by_id = ingestion.body("deposit.settled", wallet_id=UNKNOWN, amount=1, currency="USD")
    settle = ingestion.body("withdrawal.settled", hold_id=UNKNOWN)
    settle_checked = ingestion.body("withdrawal.settled", hold_id=UNKNOWN, currency="USD")
    void = ingestion.body("withdrawal.failed", hold_id=UNKNOWN)
    report = ingestion.body("balance.reported", external_ref=ref, balance=300, currency="USD")

    first = ingestion.deliver_and_index(deposit, by_id, settle, settle_checked, void, report)

    assert first == [0, 1, 2, 3, 4, 5]
    assert all(recorded(ingestion.provider, body["event_id"]) is None for body in (deposit, report))
    wallet = api.create_wallet(ADMIN, owner_id="bob", external_ref=ref)
    assert ingestion.deliver_and_index(deposit, report) == []
    assert _balance(api, wallet["id"]) == 300
    assert recorded(ingestion.provider, report["event_id"])[0] == "applied"


def test_a_failure_after_the_effect_rolls_the_whole_record_back(api, ingestion, recorded, monkeypatch):
    from wallet_core.adapters.event_batches import EventBatchRepository

    wallet = api.create_wallet(BOB)
    poisoned = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=100, currency="USD")
    healthy = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=7, currency="USD")
    original = EventBatchRepository.apply

    def explode_for_the_poisoned_one(self, records):
        outcomes = original(self, records)  # the effects are written, not committed
        if poisoned["event_id"] in [record.event_id for record in records]:
            raise RuntimeError("the process died between the effect and the commit")
        return outcomes

    monkeypatch.setattr(EventBatchRepository, "apply", explode_for_the_poisoned_one)

    failures = ingestion.deliver_and_index(poisoned, healthy)

    assert failures == [0]
    assert _balance(api, wallet["id"]) == 7  # the credit of the poisoned record left no trace
    assert recorded(ingestion.provider, poisoned["event_id"]) is None
    monkeypatch.undo()
    assert ingestion.deliver_and_index(poisoned) == []
    assert _balance(api, wallet["id"]) == 107


def test_while_the_database_is_down_every_record_is_left_for_redelivery(ingestion, monkeypatch, caplog):
    from tests.conftest import reset_caches
    from tools.pgserver import free_port

    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_SECONDS", "2")
    reset_caches()
    try:
        valid = ingestion.body("deposit.settled", wallet_id=UNKNOWN, amount=1, currency="USD")
        invalid = ingestion.body("deposit.settled", wallet_id=UNKNOWN, amount=1.5, currency="USD")
        failures = ingestion.deliver_and_index(valid, invalid)
    finally:
        monkeypatch.undo()
        reset_caches()

    assert failures == [0, 1]  # even recording a rejection needs the database
    assert any("transient failure" in r.getMessage() for r in caplog.records)


def test_a_rejected_event_delivered_again_is_acknowledged_and_stays_rejected(api, db, ingestion, recorded):
    wallet = api.funded_wallet(10)
    body = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=5, currency="EUR")

    assert ingestion.deliver(body, body) == []
    assert ingestion.deliver(body) == []

    assert recorded(ingestion.provider, body["event_id"])[0] == "rejected"
    count = db.execute(
        "SELECT count(*) FROM provider_events WHERE provider = %s", (ingestion.provider,)
    ).fetchone()[0]
    assert count == 1
    assert api.get_wallet(wallet["id"])["balance"] == 10
