"""Provider events: each (provider, event_id) applies at most once, forever.

The event's row (unique on (provider, event_id)) is written in the same transaction as its effect,
so a duplicate, even one racing its twin, is acknowledged with no second effect. What a
caller does with an event follows from how it ends:

- applied or duplicate: acknowledged;
- a business rule says it can never apply (currency mismatch, capture above the hold, hold no
  longer active, wallet closed, unknown provider...): recorded as rejected with the reason, with no
  effect, acknowledged;
- a settlement of a hold that lapsed and whose wallet cannot cover it (the money has left at the
  provider, so it is a fact, not a rejection): recorded as unresolved for an operator, acknowledged;
- it may apply later (the wallet or hold it names does not exist yet) or the database failed:
  nothing is recorded, and the queue delivers it again (and dead-letters it in the end).

A batch (`ingest_batch`) applies up to RECORDS_PER_TRANSACTION records in one transaction: the
same outcomes per record, one commit for all of them. What a record did is reported only once its
transaction has committed; when the transaction itself is lost, every record in it is applied again
on its own or reported for redelivery, never acknowledged without its effect.

The events of the contract (deposit.settled, withdrawal.settled, withdrawal.failed, balance.reported,
and the rejections of events that can never apply) are applied by one server-side call per batch
transaction, wallet_apply_provider_events: their rules, and the order they are checked in, are
written once, in migrations/versions/0005_provider_event_batches.py (why a function: see there).
Here: the outcomes it answers, as the same dispositions and domain errors with the same texts.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from wallet_core.adapters.event_batches import (
    Action,
    BalanceReport,
    Deposit,
    EventBatchRepository,
    EventRecord,
    PayoutFailure,
    RecordOutcome,
    Settlement,
)
from wallet_core.adapters.provider_events import BalanceSnapshotRepository, UnresolvedSettlementRepository
from wallet_core.domain import errors
from wallet_core.domain.models import BalanceSnapshot, Page, UnresolvedSettlement
from wallet_core.domain.principal import Principal
from wallet_core.service.access import require_admin
from wallet_core.service.pagination import newest_first_page
from wallet_core.service.unit_of_work import Transactional, retrying
from wallet_core.service.wallets import UnitOfWork

MAX_ATTEMPTS = 5
T = TypeVar("T")
# Records per batch transaction (one server-side call and one COMMIT each). The wallets a call moves
# stay locked until its COMMIT, so an API movement on one of them may wait for one call; a call that
# fails is applied again record by record. Calls lock their wallets in id order, so concurrent
# batches queue briefly but never deadlock. Measured (8 workers, SQS batches of 100 deposits on
# 1,000 wallets, PostgreSQL pinned to one CPU; /tmp driver = bench/run.py's pgbench and ingestion
# phases, two rounds on a shared machine), server CPU per event and events/s:
#   5: 0.237-0.268 ms, 1,071-1,391/s (tpcb / event 1.04-1.12);  10: 0.184-0.199 ms, 1,414-2,479/s;
#   25: 0.151-0.156 ms, 2,484-2,752/s (1.43-1.64);  50: 0.148 ms, 2,954/s;  100: 0.139 ms, 3,281/s.
# 25 takes most of the gain while a call (about 4-6 ms) stays short for the API movements behind it.
# (Before the function, 25 made batches queue on and deadlock with each other: 140/s, 0.663 ms.)
RECORDS_PER_TRANSACTION = 25


class IngestionUnitOfWork(UnitOfWork, Protocol):
    balance_snapshots: BalanceSnapshotRepository
    unresolved_settlements: UnresolvedSettlementRepository


class BatchUnitOfWork(Transactional, Protocol):
    event_batches: EventBatchRepository


@dataclass(frozen=True)
class EventReceipt:
    """What identifies and records an event, whatever its type (payload is the message as parsed)."""

    provider: str
    event_id: str
    type: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Effect:
    """What an applied event left that its caller reports on (a metric, an operator's log line)."""

    snapshot: BalanceSnapshot | None = None
    unresolved: UnresolvedSettlement | None = None


class Disposition(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    UNRESOLVED = "unresolved"


@dataclass(frozen=True)
class IngestionResult:
    disposition: Disposition
    effect: Effect = field(default_factory=Effect)
    reason: str | None = None


@dataclass(frozen=True)
class BatchItem:
    """One record of a batch: the event and what it asks of the ledger (a `Rejection` for one
    already known never to apply, recorded as rejected)."""

    receipt: EventReceipt
    action: Action


# What became of a record: its result once committed, or the error it is redelivered for.
Outcome = IngestionResult | Exception


def ingest_batch(new_uow: Callable[[], BatchUnitOfWork], items: Sequence[BatchItem]) -> list[Outcome]:
    """Apply a batch, RECORDS_PER_TRANSACTION records per transaction; the outcomes are in the items'
    order. An item twice in one batch applies once: the second finds the first's row in the same
    transaction (and both are redelivered if that transaction fails)."""
    outcomes: list[Outcome] = []
    for start in range(0, len(items), RECORDS_PER_TRANSACTION):
        outcomes += _apply_chunk(new_uow, items[start : start + RECORDS_PER_TRANSACTION])
    return outcomes


def _apply_chunk(new_uow: Callable[[], BatchUnitOfWork], chunk: Sequence[BatchItem]) -> list[Outcome]:
    committing = False
    try:
        with new_uow() as uow:
            answers = uow.event_batches.apply([_record(item) for item in chunk])
            committing = True
            uow.commit()
    except (errors.ConnectionLostError, errors.ConcurrencyConflictError):
        # Nothing of the transaction committed (the connection broke before COMMIT, the call lost a
        # race, or the commit itself lost a conflict): every record of it runs again, each in its
        # own transaction.
        pass
    except errors.ServiceUnavailableError as error:
        # The database is unreachable, or the commit's outcome is unknown: redelivery decides (a
        # record that did commit is then a duplicate, acknowledged without a second effect).
        return [error] * len(chunk)
    except Exception as error:
        if committing:  # the commit's outcome is unknown, as above
            return [error] * len(chunk)
        # The server-side call failed (a fault of one of its records: nothing of the transaction
        # commits); each record on its own, so that one fault never fails its neighbours.
    else:
        return [_outcome(item, answer) for item, answer in zip(chunk, answers, strict=True)]
    return [_apply_alone(new_uow, item) for item in chunk]


def _apply_alone(new_uow: Callable[[], BatchUnitOfWork], item: BatchItem) -> Outcome:
    """The server-side call for one record, in a transaction of its own. Deadlocks, a lost race for
    the event's key and a lost connection roll the attempt back and run it again."""

    def attempt() -> Outcome:
        with new_uow() as uow:
            answer = uow.event_batches.apply([_record(item)])[0]
            uow.commit()
        return _outcome(item, answer)

    try:
        return retrying(attempt, attempts=MAX_ATTEMPTS)
    except Exception as error:
        return error


def _record(item: BatchItem) -> EventRecord:
    receipt = item.receipt
    return EventRecord(
        provider=receipt.provider,
        event_id=receipt.event_id,
        type=receipt.type,
        payload=receipt.payload,
        created_by=f"provider:{receipt.provider}",  # events are trusted back-end input, by provider
        action=item.action,
    )


def _outcome(item: BatchItem, answer: RecordOutcome) -> Outcome:
    """The call's answer for one record as the disposition (or the retry-later error) it means."""
    receipt, action = item.receipt, item.action
    match answer.outcome:
        case "applied":
            snapshot = None
            if isinstance(action, BalanceReport) and answer.row_id is not None:
                snapshot = BalanceSnapshot(
                    id=answer.row_id,
                    wallet_id=_known(answer.wallet_id),
                    provider=receipt.provider,
                    event_id=receipt.event_id,
                    currency=action.currency,
                    reported_balance=action.balance,
                    ledger_balance=_known(answer.ledger_balance),
                    drift=action.balance - _known(answer.ledger_balance),
                    reported_at=action.reported_at,
                    created_at=answer.at,
                )
            return IngestionResult(Disposition.APPLIED, Effect(snapshot=snapshot))
        case "duplicate":
            return IngestionResult(Disposition.DUPLICATE)
        case "rejected":
            return IngestionResult(Disposition.REJECTED, reason=answer.reason)
        case "unresolved":
            unresolved = UnresolvedSettlement(
                id=_known(answer.row_id),
                provider=receipt.provider,
                event_id=receipt.event_id,
                hold_id=_known(answer.hold_id),
                wallet_id=_known(answer.wallet_id),
                amount=_known(answer.amount),
                currency=_known(answer.currency),
                reason=_known(answer.reason),
                created_at=answer.at,
            )
            return IngestionResult(
                Disposition.UNRESOLVED,
                Effect(unresolved=unresolved),
                reason=answer.reason,
            )
        case "wallet_not_found" if isinstance(action, Deposit | BalanceReport):
            named = (
                action.wallet_id
                if action.wallet_id is not None
                else f"with external_ref {action.external_ref!r}"
            )
            return errors.NotFoundError(f"Wallet {named} was not found (yet).")
        case "hold_not_found" if isinstance(action, Settlement | PayoutFailure):
            # A settlement that names its currency is checked against the hold's wallet first.
            yet = " (yet)" if isinstance(action, Settlement) and action.currency is not None else ""
            return errors.NotFoundError(f"Hold {action.hold_id} was not found{yet}.")
    raise AssertionError(f"wallet_apply_provider_events answered {answer.outcome!r}")  # pragma: no cover


def _known(value: T | None) -> T:
    if value is None:  # pragma: no cover - the function sets it with this outcome
        raise AssertionError("wallet_apply_provider_events left out a value of its outcome")
    return value


def provider_rejection(
    receipt: EventReceipt, accepted: frozenset[str], bound: str
) -> tuple[EventReceipt, str] | None:
    """Whether the event's (normalised) provider may send it here; if not, the receipt to record the
    rejection under and the reason.

    On a queue bound to one provider (only that provider's bridge may send to it), an event naming
    another provider is recorded under the bound provider: the sender's own key space, so it can
    never pre-empt the named provider's real event with the same id."""
    if bound:
        if receipt.provider != bound:
            return (
                EventReceipt(bound, receipt.event_id, receipt.type, receipt.payload),
                f"provider_mismatch: this queue carries events of {bound!r} only,"
                f" the event names {receipt.provider!r}",
            )
        return None
    if receipt.provider not in accepted:
        return receipt, f"unknown_provider: {receipt.provider!r} is not in WALLET_PROVIDERS"
    return None


def list_balance_snapshots(
    uow: IngestionUnitOfWork, principal: Principal, wallet_id: uuid.UUID, *, limit: int, cursor: str | None
) -> Page:
    require_admin(principal)
    if uow.wallets.get(wallet_id) is None:
        raise errors.NotFoundError(f"Wallet {wallet_id} was not found.")
    return newest_first_page(
        lambda n, after: uow.balance_snapshots.list_for_wallet(wallet_id, limit=n, after=after),
        limit=limit,
        cursor=cursor,
    )


def list_unresolved_settlements(
    uow: IngestionUnitOfWork, principal: Principal, *, limit: int, cursor: str | None
) -> Page:
    require_admin(principal)
    return newest_first_page(
        lambda n, after: uow.unresolved_settlements.list(limit=n, after=after), limit=limit, cursor=cursor
    )
