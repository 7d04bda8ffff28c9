"""The batch use case's decisions about whole transactions, at the lowest level that can catch them: a
fake unit of work stands in for PostgreSQL and its server-side call (the real thing is in
test_batch_transactions and test_event_batch_function)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from wallet_core.adapters.event_batches import Deposit, EventRecord, RecordOutcome, Rejection
from wallet_core.domain import errors
from wallet_core.service import ingestion
from wallet_core.service.ingestion import BatchItem, Disposition, EventReceipt, IngestionResult

WALLET = uuid.UUID(int=1)
APPLIED = IngestionResult(Disposition.APPLIED)


def _deposit(event_id: str) -> BatchItem:
    receipt = EventReceipt(provider="acme", event_id=event_id, type="deposit.settled", payload={})
    return BatchItem(receipt, Deposit(wallet_id=WALLET, external_ref=None, amount=1, currency="USD"))


def _rejection(event_id: str, reason: str) -> BatchItem:
    receipt = EventReceipt(provider="acme", event_id=event_id, type="deposit.settled", payload={})
    return BatchItem(receipt, Rejection(reason))


def _answer(record: EventRecord) -> RecordOutcome:
    """What the server-side call answers for a record that goes through: applied, or its rejection."""
    action = record.action
    return RecordOutcome(
        outcome="rejected" if isinstance(action, Rejection) else "applied",
        reason=action.reason if isinstance(action, Rejection) else None,
        transaction_id=None,
        hold_id=None,
        wallet_id=None,
        amount=None,
        currency=None,
        ledger_balance=None,
        row_id=None,
        at=datetime.now(UTC),
    )


class _EventBatches:
    def __init__(self, log: list[str], fail: Callable[[list[str]], Exception | None]) -> None:
        self.log, self.fail = log, fail

    def apply(self, records: list[EventRecord]) -> list[RecordOutcome]:
        event_ids = [record.event_id for record in records]
        self.log.append(f"call {','.join(event_ids)}")
        failure = self.fail(event_ids)
        if failure is not None:
            raise failure
        return [_answer(record) for record in records]


class _FakeUnitOfWork:
    """Logs its transactions and calls; `fail_call(event_ids)` and `fail_commit` name the error the
    call or the commit raises (None: it succeeds)."""

    def __init__(
        self,
        log: list[str],
        fail_commit: Exception | None = None,
        fail_call: Callable[[list[str]], Exception | None] = lambda event_ids: None,
    ) -> None:
        self.event_batches = _EventBatches(log, fail_call)
        self.log = log
        self.fail_commit = fail_commit

    def __enter__(self):
        self.log.append("begin")
        return self

    def __exit__(self, *exc) -> None:
        return None

    def commit(self) -> None:
        if self.fail_commit is not None:
            raise self.fail_commit
        self.log.append("commit")


def _each(errors_in_turn: list[Exception | None]) -> Iterator[Exception | None]:
    """The errors of successive attempts, then success for ever."""
    yield from errors_in_turn
    while True:
        yield None


def test_a_commit_whose_outcome_is_unknown_leaves_every_record_of_it_for_redelivery():
    log: list[str] = []
    unknown = errors.ServiceUnavailableError()
    items = [_deposit("e-1"), _rejection("e-2", "invalid: amount")]

    outcomes = ingestion.ingest_batch(lambda: _FakeUnitOfWork(log, fail_commit=unknown), items)

    # Not applied again on its own: it may have committed, redelivery decides (as a duplicate)
    assert outcomes == [unknown, unknown]
    assert log == ["begin", "call e-1,e-2"]


def test_a_commit_that_fails_for_an_unexpected_reason_leaves_every_record_for_redelivery():
    log: list[str] = []
    fault = RuntimeError("the commit's outcome is unknown")

    outcomes = ingestion.ingest_batch(lambda: _FakeUnitOfWork(log, fail_commit=fault), [_deposit("e-1")])

    assert outcomes == [fault]
    assert log == ["begin", "call e-1"]


@pytest.mark.parametrize(
    "lost",
    [errors.ConnectionLostError(), errors.ConcurrencyConflictError()],
    ids=["connection lost before the commit", "the commit lost a conflict"],
)
def test_a_lost_transaction_applies_each_record_again_on_its_own_including_rejections(lost):
    log: list[str] = []
    attempts = _each([lost])
    items = [_deposit("e-1"), _rejection("e-2", "invalid: amount")]

    outcomes = ingestion.ingest_batch(lambda: _FakeUnitOfWork(log, fail_commit=next(attempts)), items)

    assert outcomes == [APPLIED, IngestionResult(Disposition.REJECTED, reason="invalid: amount")]
    assert log == ["begin", "call e-1,e-2", "begin", "call e-1", "commit", "begin", "call e-2", "commit"]


def test_a_call_that_fails_for_one_record_never_fails_its_neighbours():
    log: list[str] = []

    def bug_in_e2(event_ids: list[str]) -> Exception | None:
        return RuntimeError("a bug in this record") if "e-2" in event_ids else None

    outcomes = ingestion.ingest_batch(
        lambda: _FakeUnitOfWork(log, fail_call=bug_in_e2), [_deposit("e-1"), _deposit("e-2"), _deposit("e-3")]
    )

    assert outcomes[0] == outcomes[2] == APPLIED
    assert isinstance(outcomes[1], RuntimeError)
    assert log == [
        "begin",
        "call e-1,e-2,e-3",
        "begin",
        "call e-1",
        "commit",
        "begin",
        "call e-2",
        "begin",
        "call e-3",
        "commit",
    ]


def test_a_record_that_fails_again_on_its_own_is_reported_with_its_error():
    log: list[str] = []
    commits = _each([errors.ConnectionLostError()])
    # The batch's call goes through (its commit is lost); the record's own call meets a bug.
    calls = iter([None, RuntimeError("a bug in this record")])

    outcomes = ingestion.ingest_batch(
        lambda: _FakeUnitOfWork(log, fail_commit=next(commits), fail_call=lambda event_ids: next(calls)),
        [_deposit("e-1")],
    )

    assert [type(outcome) for outcome in outcomes] == [RuntimeError]
    assert log == ["begin", "call e-1", "begin", "call e-1"]


def test_a_deadlock_of_a_record_on_its_own_reruns_its_whole_transaction():
    log: list[str] = []
    # The batch transaction deadlocks, then the record on its own twice more.
    calls = _each([errors.ConcurrencyConflictError()] * 3)

    outcomes = ingestion.ingest_batch(
        lambda: _FakeUnitOfWork(log, fail_call=lambda event_ids: next(calls)), [_deposit("e-1")]
    )

    assert outcomes == [APPLIED]
    assert log.count("begin") == 4
    assert log.count("commit") == 1


def test_persistent_deadlocks_are_left_for_redelivery():
    log: list[str] = []

    def deadlocked(event_ids: list[str]) -> Exception:
        return errors.ConcurrencyConflictError()

    outcomes = ingestion.ingest_batch(lambda: _FakeUnitOfWork(log, fail_call=deadlocked), [_deposit("e-1")])

    assert [type(outcome) for outcome in outcomes] == [errors.ConcurrencyConflictError]
    assert log.count("begin") == 1 + ingestion.MAX_ATTEMPTS  # the batch, then a bounded number alone
    assert "commit" not in log


def test_a_batch_is_split_into_transactions_of_records_per_transaction():
    log: list[str] = []
    count = ingestion.RECORDS_PER_TRANSACTION * 2 + 1
    items = [_deposit(f"e-{n}") for n in range(count)]

    outcomes = ingestion.ingest_batch(lambda: _FakeUnitOfWork(log), items)

    assert outcomes == [APPLIED] * count
    assert log.count("commit") == 3
    assert [entry.count(",") + 1 for entry in log if entry.startswith("call")] == [
        ingestion.RECORDS_PER_TRANSACTION,
        ingestion.RECORDS_PER_TRANSACTION,
        1,
    ]
