"""At most once, forever: duplicates (sequential, interleaved, out of order, racing) have exactly one
effect, and a batch reports exactly the records that may apply later."""

from __future__ import annotations

import random
import threading
import uuid

from tests.conftest import ADMIN, BOB
from tests.support.lambda_runtime import sample_event


def _credits(db, wallet_id: str) -> list[int]:
    return [
        row[0]
        for row in db.execute(
            "SELECT amount FROM transactions WHERE destination_wallet_id = %s AND kind = 'credit' ORDER BY amount",
            (wallet_id,),
        ).fetchall()
    ]


def test_an_event_delivered_three_times_interleaved_and_out_of_order_applies_once(
    api, db, ingestion, invariants
):
    wallet = api.create_wallet(BOB)
    events = [
        ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=amount, currency="USD")
        for amount in (1, 10, 100)
    ]
    # Three copies of each, shuffled across four batches: later copies can come first.
    deliveries = [event for event in events for _ in range(3)]
    random.Random(7).shuffle(deliveries)

    failures = [ingestion.deliver(*deliveries[i : i + 3]) for i in range(0, 9, 3)]

    assert failures == [[], [], []]
    assert _credits(db, wallet["id"]) == [1, 10, 100]
    assert api.get_wallet(wallet["id"])["balance"] == 111
    assert invariants() == []


def test_racing_deliveries_of_one_event_have_exactly_one_effect(api, db, ingestion):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 600).body
    deposit = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=50, currency="USD")
    capture = ingestion.body("withdrawal.settled", hold_id=hold["id"], amount=100)
    barrier = threading.Barrier(6)
    failures: list = []
    errors: list[BaseException] = []

    def deliver(body) -> None:
        barrier.wait()
        try:
            failures.extend(ingestion.deliver(body))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(body,)) for body in [deposit] * 3 + [capture] * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (errors, failures) == ([], [])
    assert _credits(db, wallet["id"]) == [50, 1_000]
    assert api.get_hold(hold["id"]).body["captured_amount"] == 100
    assert api.get_wallet(wallet["id"])["balance"] == 950


def test_a_batch_of_100_reports_exactly_the_not_yet_records(api, db, ingestion, recorded, invariants):
    wallet = api.create_wallet(BOB)
    rng = random.Random(100)
    originals = [
        ingestion.body(
            "deposit.settled", wallet_id=wallet["id"], amount=rng.randint(1, 1_000), currency="USD"
        )
        for _ in range(80)
    ]
    duplicates = [dict(rng.choice(originals)) for _ in range(10)]
    invalid = [
        {**ingestion.body("deposit.settled", wallet_id=wallet["id"], currency="USD"), "amount": 1.5}
        for _ in range(5)
    ]
    not_yet = [
        ingestion.body("deposit.settled", external_ref=f"later-{uuid.uuid4()}", amount=1, currency="USD")
        for _ in range(5)
    ]
    batch = originals + duplicates + invalid + not_yet
    rng.shuffle(batch)

    failed = ingestion.deliver_and_index(*batch)

    assert [batch[index] for index in failed] == [body for body in batch if body in not_yet]
    assert api.get_wallet(wallet["id"])["balance"] == sum(body["amount"] for body in originals)
    assert {recorded(ingestion.provider, body["event_id"])[0] for body in invalid} == {"rejected"}
    assert all(recorded(ingestion.provider, body["event_id"]) is None for body in not_yet)
    assert invariants() == []


def test_the_mixed_sample_batch(api, ingestion, recorded):
    event = sample_event("sqs_mixed_batch")
    ref = f"acme-acct-{uuid.uuid4()}"
    for record in event["Records"]:  # a key space of this test's own in the shared database
        record["body"] = record["body"].replace("acme-pay", ingestion.provider).replace("acme-acct-1001", ref)
    wallet = api.create_wallet(ADMIN, owner_id="bob", external_ref=ref)

    response = ingestion.invoke(event)

    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][3]["messageId"]}]}
    assert api.get_wallet(wallet["id"])["balance"] == 125_000
    assert recorded(ingestion.provider, "dep-0001")[0] == "applied"
    assert recorded(ingestion.provider, "dep-0002-invalid")[0] == "rejected"


def test_every_single_event_sample_applies(api, ingestion, recorded):
    ref = f"acme-acct-{uuid.uuid4()}"
    wallet = api.create_wallet(ADMIN, owner_id="bob", external_ref=ref)
    settling = None
    outcomes = {}
    for name in (
        "sqs_deposit_settled",
        "sqs_withdrawal_settled",
        "sqs_withdrawal_failed",
        "sqs_balance_reported",
    ):
        event = sample_event(name)
        record = event["Records"][0]
        if name == "sqs_withdrawal_settled":
            settling = api.create_hold(wallet["id"], 50_000).body
            hold_id = settling["id"]
        elif name == "sqs_withdrawal_failed":
            hold_id = api.create_hold(wallet["id"], 10_000).body["id"]
        else:
            hold_id = "unused"
        record["body"] = (
            record["body"]
            .replace("acme-pay", ingestion.provider)
            .replace("acme-acct-1001", ref)
            .replace("9c7e2d4a-1b3f-4e6a-8d5c-2f0b9a7e1c63", hold_id)
        )
        outcomes[name] = ingestion.invoke(event)

    assert all(outcome == {"batchItemFailures": []} for outcome in outcomes.values()), outcomes
    after = api.get_wallet(wallet["id"])
    assert (after["balance"], after["held"]) == (125_000 - 40_000, 10_000)
    assert api.get_hold(settling["id"]).body["captured_amount"] == 40_000
    assert recorded(ingestion.provider, "bal-2026-11-22-1001")[0] == "applied"
