"""The batch use case's decisions about whole transactions, at the lowest level that can catch them: a
fake unit of work stands in for PostgreSQL (the real thing is in test_batch_transactions)."""

from __future__ import annotations

import contextlib

from wallet_core.domain import errors
from wallet_core.service import ingestion
from wallet_core.service.ingestion import BatchItem, Disposition, Effect, EventReceipt, IngestionResult


def _receipt(event_id: str) -> EventReceipt:
    return EventReceipt(provider="acme", event_id=event_id, type="deposit.settled", payload={})


class _Events:
    def __init__(self) -> None:
        self.claimed: set[str] = set()

    def claim(self, provider, event_id, *args) -> bool:
        if event_id in self.claimed:
            return False
        self.claimed.add(event_id)
        return True

    def mark_applied(self, *args, **kwargs) -> None:
        return None

    def add_rejected(self, provider, event_id, *args) -> bool:
        return self.claim(provider, event_id)


class _Savepoint:
    def rollback(self) -> None:
        return None


class _FakeUnitOfWork:
    """Logs its transactions; `fail_commit` makes its commit raise that error."""

    def __init__(self, log: list[str], fail_commit: Exception | None = None) -> None:
        self.provider_events = _Events()
        self.log = log
        self.fail_commit = fail_commit

    def __enter__(self):
        self.log.append("begin")
        return self

    def __exit__(self, *exc) -> None:
        return None

    @contextlib.contextmanager
    def savepoint(self):
        yield _Savepoint()

    def commit(self) -> None:
        if self.fail_commit is not None:
            raise self.fail_commit
        self.log.append("commit")


def _applies(uow, principal) -> Effect:
    return Effect()


def test_a_commit_whose_outcome_is_unknown_leaves_every_record_of_it_for_redelivery():
    log: list[str] = []
    unknown = errors.ServiceUnavailableError()
    items = [
        BatchItem(_receipt("e-1"), effect=_applies),
        BatchItem(_receipt("e-2"), rejection="invalid: amount"),
    ]

    outcomes = ingestion.ingest_batch(lambda: _FakeUnitOfWork(log, fail_commit=unknown), items)

    # Not applied again on its own: it may have committed, redelivery decides (as a duplicate)
    assert outcomes == [unknown, unknown]
    assert log == ["begin"]


def test_a_lost_transaction_applies_each_record_again_on_its_own_including_rejections():
    log: list[str] = []
    attempts = iter([errors.ConnectionLostError(), None, None])
    items = [
        BatchItem(_receipt("e-1"), effect=_applies),
        BatchItem(_receipt("e-2"), rejection="invalid: amount"),
    ]

    outcomes = ingestion.ingest_batch(lambda: _FakeUnitOfWork(log, fail_commit=next(attempts)), items)

    assert outcomes == [
        IngestionResult(Disposition.APPLIED, Effect()),
        IngestionResult(Disposition.REJECTED, reason="invalid: amount"),
    ]
    assert log == ["begin", "begin", "commit", "begin", "commit"]


def test_a_record_that_fails_again_on_its_own_is_reported_with_its_error():
    log: list[str] = []
    attempts = iter([errors.ConnectionLostError(), None])

    def new_uow():
        return _FakeUnitOfWork(log, fail_commit=next(attempts))

    def broken(uow, principal):
        raise RuntimeError("a bug in this record")

    outcomes = ingestion.ingest_batch(new_uow, [BatchItem(_receipt("e-1"), effect=broken)])

    assert [type(outcome) for outcome in outcomes] == [RuntimeError]


def test_a_batch_is_split_into_transactions_of_records_per_transaction():
    log: list[str] = []
    count = ingestion.RECORDS_PER_TRANSACTION * 2 + 1
    items = [BatchItem(_receipt(f"e-{n}"), effect=_applies) for n in range(count)]

    outcomes = ingestion.ingest_batch(lambda: _FakeUnitOfWork(log), items)

    assert [outcome.disposition for outcome in outcomes] == [Disposition.APPLIED] * count
    assert log.count("commit") == 3
