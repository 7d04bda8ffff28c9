"""wallet_apply_provider_events (migration 0005): one call applies a batch transaction's records, each
with its own outcome, and words its rejections exactly as the domain errors do."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from tests.conftest import BOB
from wallet_core.adapters.event_batches import Deposit, EventRecord, PayoutFailure, Rejection, Settlement
from wallet_core.adapters.uow import SqlUnitOfWork
from wallet_core.domain import errors
from wallet_core.domain.models import Hold, HoldStatus, Wallet, WalletStatus
from wallet_core.service.ingestion import RECORDS_PER_TRANSACTION


def _record(action, event_id: str | None = None, provider: str = "acme-fn") -> EventRecord:
    return EventRecord(
        provider=provider,
        event_id=event_id or f"evt-{uuid.uuid4()}",
        type="test",
        payload={"kind": type(action).__name__},
        created_by=f"provider:{provider}",
        action=action,
    )


def _deposit(wallet_id, amount: int, currency: str = "USD") -> Deposit:
    return Deposit(wallet_id=uuid.UUID(str(wallet_id)), external_ref=None, amount=amount, currency=currency)


def _call(*records: EventRecord):
    with SqlUnitOfWork() as uow:
        outcomes = uow.event_batches.apply(list(records))
        uow.commit()
    return [(outcome.outcome, outcome.reason) for outcome in outcomes]


def _status(db, record: EventRecord):
    row = db.execute(
        "SELECT status FROM provider_events WHERE provider = %s AND event_id = %s",
        (record.provider, record.event_id),
    ).fetchone()
    return row[0] if row else None


def _wallet(wallet_id: str, currency: str = "USD") -> Wallet:
    """A domain wallet with this id, to have the Python rules word their errors."""
    now = datetime.now(UTC)
    return Wallet(uuid.UUID(wallet_id), "bob", currency, WalletStatus.ACTIVE, 0, 0, 1, None, {}, now, now)


def _text(error: errors.WalletServiceError) -> str:
    return f"{error.code}: {error.detail}"


def test_an_event_twice_in_one_call_applies_once(api, db, invariants):
    wallet = api.create_wallet(BOB)
    deposit = _record(_deposit(wallet["id"], 40))

    assert _call(deposit, deposit) == [("applied", None), ("duplicate", None)]

    assert api.get_wallet(wallet["id"])["balance"] == 40
    assert _status(db, deposit) == "applied"
    assert invariants() == []


def test_a_rejected_record_between_two_applied_ones_leaves_both_applied(api, db, invariants):
    wallet = api.create_wallet(BOB)
    before = _record(_deposit(wallet["id"], 5))
    wrong = _record(_deposit(wallet["id"], 7, currency="EUR"))
    after = _record(_deposit(wallet["id"], 11))

    outcomes = _call(before, wrong, after)

    expected = _text(_raised(lambda: _wallet(wallet["id"]).ensure_currency("EUR")))
    assert outcomes == [("applied", None), ("rejected", expected), ("applied", None)]
    assert [_status(db, record) for record in (before, wrong, after)] == ["applied", "rejected", "applied"]
    assert api.get_wallet(wallet["id"])["balance"] == 16
    assert invariants() == []


def test_a_missing_wallet_is_left_for_later_without_losing_the_others(
    api, db, ingestion, recorded, invariants
):
    wallet = api.create_wallet(BOB)
    missing = _record(_deposit(uuid.uuid4(), 9))
    first, last = _record(_deposit(wallet["id"], 1)), _record(_deposit(wallet["id"], 2))

    assert _call(first, missing, last) == [("applied", None), ("wallet_not_found", None), ("applied", None)]
    assert _status(db, missing) is None  # nothing recorded: it applies when it comes again

    # Through the queue: the same, and the record is reported for redelivery with today's text
    ref = f"later-{uuid.uuid4()}"
    bodies = [
        ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=10, currency="USD"),
        ingestion.body("deposit.settled", external_ref=ref, amount=20, currency="USD"),
        ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=30, currency="USD"),
    ]
    assert ingestion.deliver_and_index(*bodies) == [1]
    assert recorded(ingestion.provider, bodies[1]["event_id"]) is None
    assert api.get_wallet(wallet["id"])["balance"] == 43
    assert invariants() == []


def test_a_record_for_a_missing_hold_is_left_for_later():
    hold_id = uuid.uuid4()
    settle = _record(Settlement(hold_id=hold_id, amount=None))
    fail = _record(PayoutFailure(hold_id=hold_id))

    assert _call(settle, fail) == [("hold_not_found", None), ("hold_not_found", None)]


def _raised(act) -> errors.WalletServiceError:
    with pytest.raises(errors.WalletServiceError) as raised:
        act()
    return raised.value


def test_the_rejections_are_worded_as_the_domain_errors(api, db):
    closed = api.funded_wallet(10)
    db.execute("UPDATE wallets SET status = 'closed' WHERE id = %s", (closed["id"],))
    full = api.create_wallet(BOB)
    for amount in [10**15] * 9 + [7_199_254_740_990]:  # up to 2^53 - 2, through the ledger
        assert api.credit(full["id"], amount).status == 201
    funded = api.funded_wallet(1_000)
    hold = api.create_hold(funded["id"], 100).body
    captured = api.create_hold(funded["id"], 50).body
    assert api.capture_hold(captured["id"]).status == 201
    holds = {
        name: Hold(
            uuid.UUID(h["id"]),
            uuid.UUID(funded["id"]),
            h["amount"],
            0,
            status,
            None,
            *[datetime.now(UTC)] * 3,
        )
        for name, h, status in (
            ("open", hold, HoldStatus.ACTIVE),
            ("captured", captured, HoldStatus.CAPTURED),
        )
    }

    outcomes = _call(
        _record(_deposit(closed["id"], 1)),
        _record(_deposit(full["id"], 2)),
        _record(Settlement(hold_id=uuid.UUID(hold["id"]), amount=101)),
        _record(Settlement(hold_id=uuid.UUID(hold["id"]), amount=1, currency="EUR")),
        _record(Settlement(hold_id=uuid.UUID(captured["id"]), amount=None)),
        _record(PayoutFailure(hold_id=uuid.UUID(captured["id"]))),
    )

    assert outcomes == [
        ("rejected", _text(errors.WalletClosedError())),
        ("rejected", _text(errors.BalanceLimitExceededError())),
        ("rejected", _text(_raised(lambda: holds["open"].ensure_covers(101)))),
        ("rejected", _text(_raised(lambda: _wallet(funded["id"]).ensure_currency("EUR")))),
        ("rejected", _text(_raised(holds["captured"].ensure_active))),
        ("rejected", _text(_raised(holds["captured"].ensure_active))),
    ]


def test_a_rejection_is_recorded_once_and_a_second_one_is_a_duplicate(db):
    rejection = _record(Rejection("schema: amount: not an integer"))

    assert _call(rejection, rejection) == [
        ("rejected", "schema: amount: not an integer"),
        ("duplicate", None),
    ]
    assert _status(db, rejection) == "rejected"


def test_a_batch_transaction_is_one_call_and_one_commit(api, ingestion, monkeypatch):
    from wallet_core.adapters.session import RawSession

    wallet = api.create_wallet(BOB)
    statements: list[str] = []
    original = RawSession.fetch

    def fetch(self, sql, params):
        statements.append(sql)
        return original(self, sql, params)

    monkeypatch.setattr(RawSession, "fetch", fetch)
    bodies = [
        ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=n + 1, currency="USD")
        for n in range(RECORDS_PER_TRANSACTION)
    ]

    assert ingestion.deliver(*bodies) == []

    assert len(statements) == 1
    assert "wallet_apply_provider_events" in statements[0]


def _waiting_on_a_transaction(db) -> int:
    return db.execute(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
    ).fetchone()[0]


def _eventually(condition, seconds: float = 20.0) -> bool:
    """Polls until the condition holds (a bound, not a timing assumption: it returns as soon as it does)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.01)
    return True


def test_a_key_taken_by_another_body_while_the_call_runs_undoes_the_effect(
    api, db, ingestion, owner_database_url, recorded, invariants
):
    import psycopg

    from tests.conftest import _libpq

    wallet = api.create_wallet(BOB)
    body = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=25, currency="USD")
    result: list = []
    # Another delivery with the same key (and another body) holds the key, uncommitted.
    with psycopg.connect(_libpq(owner_database_url)) as twin:
        twin.execute(
            "INSERT INTO provider_events (id, provider, event_id, type, payload, status, reason, received_at)"
            " VALUES (%s, %s, %s, 'deposit.settled', '{}', 'rejected', 'the twin', now())",
            (uuid.uuid4(), ingestion.provider, body["event_id"]),
        )
        worker = threading.Thread(target=lambda: result.append(ingestion.deliver(body)))
        worker.start()
        # The call has written the credit and now waits on the twin's key; then the twin commits.
        assert _eventually(lambda: _waiting_on_a_transaction(db) == 1)
        twin.commit()
    worker.join(timeout=30)

    assert result == [[]]  # acknowledged: the key's first delivery stands
    assert recorded(ingestion.provider, body["event_id"])[:2] == ("rejected", "the twin")
    assert api.get_wallet(wallet["id"])["balance"] == 0  # the credit written under the lost key is gone
    assert invariants() == []
