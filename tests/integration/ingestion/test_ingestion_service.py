"""The ingestion use case's own branches, at the lowest level that can catch them: a fake unit of
work stands in for PostgreSQL."""

from __future__ import annotations

import pytest

from wallet_core.domain import errors
from wallet_core.service import ingestion
from wallet_core.service.ingestion import Disposition, Effect, EventReceipt

RECEIPT = EventReceipt(provider="acme", event_id="e-1", type="deposit.settled", payload={})


class _Events:
    def __init__(self, claimed: bool = True, recorded: bool = True) -> None:
        self.claimed, self.recorded = claimed, recorded
        self.applied: list[tuple] = []

    def claim(self, *args) -> bool:
        return self.claimed

    def mark_applied(self, provider, event_id, **ids) -> None:
        self.applied.append((provider, event_id, ids))

    def add_rejected(self, *args) -> bool:
        return self.recorded


class _FakeUnitOfWork:
    def __init__(self, events: _Events) -> None:
        self.provider_events = events
        self.commits = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def commit(self) -> None:
        self.commits += 1


def test_a_deadlock_reruns_the_whole_attempt():
    uow = _FakeUnitOfWork(_Events())
    calls = []

    def effect(uow, principal):
        calls.append(principal.subject)
        if len(calls) < 3:
            raise errors.ConcurrencyConflictError()
        return Effect()

    result = ingestion.ingest(uow, RECEIPT, effect)

    assert result.disposition is Disposition.APPLIED
    assert calls == ["provider:acme"] * 3
    assert uow.commits == 1


def test_persistent_deadlocks_are_left_for_redelivery():
    def effect(uow, principal):
        raise errors.ConcurrencyConflictError()

    with pytest.raises(errors.ConcurrencyConflictError):
        ingestion.ingest(_FakeUnitOfWork(_Events()), RECEIPT, effect)


def test_a_duplicate_runs_no_effect():
    def effect(uow, principal):  # pragma: no cover - must not run
        raise AssertionError("a duplicate must not apply")

    assert ingestion.ingest(_FakeUnitOfWork(_Events(claimed=False)), RECEIPT, effect).disposition is (
        Disposition.DUPLICATE
    )


def test_a_rejection_raced_by_a_recorded_twin_is_a_duplicate():
    def effect(uow, principal):
        raise errors.CurrencyMismatchError()

    result = ingestion.ingest(_FakeUnitOfWork(_Events(recorded=False)), RECEIPT, effect)

    assert (result.disposition, result.reason) == (Disposition.DUPLICATE, None)
