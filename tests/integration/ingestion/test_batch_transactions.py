"""Batches in few transactions: one call and one commit for many records, the same per-record
outcomes as one transaction per record, and nothing acknowledged that did not commit: not when a
connection dies mid-batch, not when two batch transactions deadlock."""

from __future__ import annotations

import threading
import uuid

from tests.conftest import BOB
from tests.support.threads import run_threads
from wallet_core.service.ingestion import RECORDS_PER_TRANSACTION


def _balance(api, wallet_id: str) -> int:
    return api.get_wallet(wallet_id)["balance"]


def _transactions_that_recorded(db, provider: str) -> int:
    """The number of transactions that recorded the provider's events: received_at is now(), the
    time its transaction started."""
    return db.execute(
        "SELECT count(DISTINCT received_at) FROM provider_events WHERE provider = %s", (provider,)
    ).fetchone()[0]


def _spy_on_the_call(monkeypatch, *, after=None, before=None):
    """Runs `after(repository, event_ids)` whenever the server-side call has written the effects of
    these events (their wallets locked, the transaction not yet committed), and `before(...)` just
    before such a call; then lets it carry on."""
    from wallet_core.adapters.event_batches import EventBatchRepository

    original = EventBatchRepository.apply

    def apply(self, records):
        event_ids = [record.event_id for record in records]
        if before is not None:
            before(self, event_ids)
        outcomes = original(self, records)
        if after is not None:
            after(self, event_ids)
        return outcomes

    monkeypatch.setattr(EventBatchRepository, "apply", apply)


def test_a_batch_commits_once_per_records_per_transaction_not_once_per_record(api, db, ingestion, invariants):
    wallet = api.create_wallet(BOB)
    count = RECORDS_PER_TRANSACTION + 5
    bodies = [
        ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=index + 1, currency="USD")
        for index in range(count)
    ]

    assert ingestion.deliver(*bodies) == []

    assert _transactions_that_recorded(db, ingestion.provider) == 2
    assert _balance(api, wallet["id"]) == count * (count + 1) // 2
    assert invariants() == []


def test_each_record_keeps_its_own_outcome_inside_one_transaction(api, db, ingestion, recorded, invariants):
    wallet = api.funded_wallet(100)
    applies = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=5, currency="USD")
    wrong_currency = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=7, currency="EUR")
    invalid = {**ingestion.body("deposit.settled", wallet_id=wallet["id"], currency="USD"), "amount": 1.5}
    not_yet = ingestion.body(
        "deposit.settled", external_ref=f"later-{uuid.uuid4()}", amount=1, currency="USD"
    )
    also_applies = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=11, currency="USD")

    failed = ingestion.deliver_and_index(applies, wrong_currency, invalid, not_yet, also_applies)

    assert failed == [3]
    assert _balance(api, wallet["id"]) == 116  # the rejected record's credit was undone, not its neighbours'
    assert [
        recorded(ingestion.provider, body["event_id"])[0] for body in (applies, wrong_currency, invalid)
    ] == [
        "applied",
        "rejected",
        "rejected",
    ]
    assert recorded(ingestion.provider, not_yet["event_id"]) is None
    assert _transactions_that_recorded(db, ingestion.provider) == 1
    assert invariants() == []


def test_an_event_twice_in_one_batch_applies_once(api, db, ingestion, recorded, invariants):
    wallet = api.create_wallet(BOB)
    deposit = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=40, currency="USD")
    rejected = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=3, currency="EUR")

    assert ingestion.deliver(deposit, rejected, dict(deposit), dict(rejected)) == []

    assert _balance(api, wallet["id"]) == 40
    count = db.execute(
        "SELECT count(*) FROM provider_events WHERE provider = %s", (ingestion.provider,)
    ).fetchone()[0]
    assert count == 2
    assert recorded(ingestion.provider, rejected["event_id"])[0] == "rejected"
    assert invariants() == []


def test_an_event_twice_in_one_batch_that_cannot_apply_yet_is_redelivered_both_times(
    api, ingestion, recorded
):
    ref = f"later-{uuid.uuid4()}"
    deposit = ingestion.body("deposit.settled", external_ref=ref, amount=9, currency="USD")

    assert ingestion.deliver_and_index(deposit, dict(deposit)) == [0, 1]
    assert recorded(ingestion.provider, deposit["event_id"]) is None


def _kill(db, pid: int) -> None:
    # Waits (up to 5 s) until the backend has really gone: the batch's next statement meets a dead
    # connection, not a race with the signal.
    assert db.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0] is True


def _kill_under_the_call(db, repository) -> int:
    """Kill the backend that has just run the call (its effects written, not committed) before its
    answer is used: what the batch sees when its connection dies while the call runs."""
    pid = repository._session.connection.info.backend_pid
    _kill(db, pid)
    repository._session.fetch("SELECT 1", {})  # raises: the connection is gone
    return pid


def test_a_connection_killed_mid_batch_acknowledges_nothing_that_did_not_commit(
    api, db, ingestion, recorded, monkeypatch, invariants
):
    wallet = api.create_wallet(BOB)
    first, doomed, last = (
        ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=amount, currency="USD")
        for amount in (1, 20, 300)
    )
    kills: list[int] = []

    def kill_the_connection_applying_the_doomed_one(repository, event_ids):
        if doomed["event_id"] in event_ids:  # every time: this record never gets through
            kills.append(repository._session.connection.info.backend_pid)
            _kill_under_the_call(db, repository)

    _spy_on_the_call(monkeypatch, after=kill_the_connection_applying_the_doomed_one)

    failed = ingestion.deliver_and_index(first, doomed, last)

    # The batch's transaction died after `first` was applied in it: `first` is acknowledged only
    # because it was applied again, on its own, and committed; `doomed` is left for redelivery.
    assert failed == [1]
    assert len(kills) > 1  # the batch transaction, then the record on its own (and its retries)
    assert _balance(api, wallet["id"]) == 301
    assert recorded(ingestion.provider, first["event_id"])[0] == "applied"
    assert recorded(ingestion.provider, doomed["event_id"]) is None
    assert invariants() == []

    monkeypatch.undo()
    assert ingestion.deliver_and_index(first, doomed, last) == []
    assert _balance(api, wallet["id"]) == 321
    assert invariants() == []


def test_a_connection_killed_once_mid_batch_costs_no_redelivery(api, db, ingestion, monkeypatch, invariants):
    wallet = api.create_wallet(BOB)
    bodies = [
        ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=amount, currency="USD")
        for amount in (1, 20, 300)
    ]
    kills: list[int] = []

    def kill_once(repository, event_ids):
        if bodies[1]["event_id"] in event_ids and not kills:
            kills.append(repository._session.connection.info.backend_pid)
            _kill_under_the_call(db, repository)

    _spy_on_the_call(monkeypatch, after=kill_once)

    assert ingestion.deliver(*bodies) == []

    assert len(kills) == 1
    assert _balance(api, wallet["id"]) == 321
    assert invariants() == []


def test_two_batches_that_deadlock_on_each_others_wallets_lose_nothing(
    api, db, ingestion, monkeypatch, invariants
):
    # Funded first: the currency's system account exists before the race.
    a, b = api.funded_wallet(1, BOB), api.funded_wallet(1, BOB)
    # The call locks every wallet of its batch at once, in id order, so two calls never deadlock
    # on each other's wallets. Batch one's transaction locks a first and batch two's b first (as
    # the records name them), each waiting after that lock until the other holds its own: then
    # their calls meet a certain deadlock.
    one = [
        ingestion.body("deposit.settled", wallet_id=w["id"], amount=n, currency="USD")
        for w, n in ((a, 1), (b, 2))
    ]
    two = [
        ingestion.body("deposit.settled", wallet_id=w["id"], amount=n, currency="USD")
        for w, n in ((b, 10), (a, 20))
    ]
    firsts = {one[0]["event_id"]: a["id"], two[0]["event_id"]: b["id"]}
    both_hold_a_lock = threading.Barrier(2)

    def lock_the_first_wallet_first(repository, event_ids):
        first = firsts.pop(event_ids[0], None)
        if first is not None and len(event_ids) > 1:  # the batch transaction, not a record alone
            repository._session.fetch(
                "SELECT 1 FROM wallets WHERE id = %(id)s FOR NO KEY UPDATE", {"id": first}
            )
            both_hold_a_lock.wait(timeout=20)

    _spy_on_the_call(monkeypatch, before=lock_the_first_wallet_first)

    failures = run_threads(2, lambda index: ingestion.deliver(*(one, two)[index]))

    assert failures == []
    assert (_balance(api, a["id"]), _balance(api, b["id"])) == (22, 13)
    # The deadlock's victim applied its two records again, each on its own: three transactions
    # recorded the four events.
    assert _transactions_that_recorded(db, ingestion.provider) == 3
    assert invariants() == []
