"""Provider events: each (provider, event_id) applies at most once, forever.

The event's row (unique on (provider, event_id)) is written in the same transaction as its effect,
so a duplicate, even one racing its twin, is acknowledged with no second effect. What a
caller does with an event follows from how it ends:

- applied or duplicate: acknowledged;
- a business rule says it can never apply (currency mismatch, capture above the hold, hold no
  longer active, wallet closed, unknown provider...): rolled back, recorded as rejected with the
  reason, acknowledged;
- a settlement of a hold that lapsed and whose wallet cannot cover it (the money has left at the
  provider, so it is a fact, not a rejection): recorded as unresolved for an operator, acknowledged;
- it may apply later (the wallet or hold it names does not exist yet) or the database failed:
  rolled back and raised, so the queue delivers it again (and dead-letters it in the end).

A batch (`ingest_batch`) applies up to RECORDS_PER_TRANSACTION records in one transaction: the
same outcomes per record, one commit for all of them. What a record did is reported only once its
transaction has committed; when the transaction itself is lost, every record in it is applied again
on its own or reported for redelivery, never acknowledged without its effect.

The events of the contract (deposit.settled, withdrawal.settled, withdrawal.failed, balance.reported,
and the rejections of events that can never apply) are applied by one server-side call per batch
transaction, wallet_apply_provider_events: their rules, and the order they are checked in, are
written once, in migrations/versions/0005_provider_event_batches.py (why a function: see there).
Here: the outcomes it answers, as the same dispositions and domain errors with the same texts. Any
other effect (`BatchItem.effect`) runs in Python, in a savepoint of the same transaction.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
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
from wallet_core.adapters.provider_events import (
    BalanceSnapshotRepository,
    ProviderEventRepository,
    UnresolvedSettlementRepository,
)
from wallet_core.domain import errors
from wallet_core.domain.models import BalanceSnapshot, Page, Transaction, UnresolvedSettlement
from wallet_core.domain.principal import ADMIN_SCOPE, Principal
from wallet_core.service.access import require_admin
from wallet_core.service.holds import HoldUnitOfWork
from wallet_core.service.pagination import newest_first_page
from wallet_core.service.unit_of_work import retrying

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


class IngestionUnitOfWork(HoldUnitOfWork, Protocol):
    provider_events: ProviderEventRepository
    balance_snapshots: BalanceSnapshotRepository
    unresolved_settlements: UnresolvedSettlementRepository


class Rollback(Protocol):
    def rollback(self) -> None: ...


class BatchUnitOfWork(IngestionUnitOfWork, Protocol):
    event_batches: EventBatchRepository

    def savepoint(self) -> AbstractContextManager[Rollback]: ...


@dataclass(frozen=True)
class EventReceipt:
    """What identifies and records an event, whatever its type (payload is the message as parsed)."""

    provider: str
    event_id: str
    type: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Effect:
    transaction: Transaction | None = None
    transaction_id: uuid.UUID | None = None  # what the server-side call posted (it returns the id only)
    hold_id: uuid.UUID | None = None
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


EventEffect = Callable[[IngestionUnitOfWork, Principal], Effect]

# Errors that say nothing final about the event: it is delivered again. NotFoundError is "not yet":
# events can arrive before the wallet or hold they refer to.
_RETRY_LATER = (errors.NotFoundError, errors.ConcurrencyConflictError, errors.ServiceUnavailableError)


def provider_principal(provider: str) -> Principal:
    """Events are trusted back-end input: they act as an admin named after their provider."""
    return Principal(subject=f"provider:{provider}", scopes=frozenset({ADMIN_SCOPE}))


def ingest(uow: IngestionUnitOfWork, receipt: EventReceipt, effect: EventEffect) -> IngestionResult:
    """Apply the event once. Deadlocks roll the attempt back and run it again."""
    return retrying(lambda: _attempt(uow, receipt, effect), attempts=MAX_ATTEMPTS)


def _attempt(uow: IngestionUnitOfWork, receipt: EventReceipt, effect: EventEffect) -> IngestionResult:
    with uow:
        outcome = _apply(uow, receipt, effect)
        if isinstance(outcome, IngestionResult):
            if outcome.disposition is not Disposition.DUPLICATE:
                uow.commit()
            return outcome
    return reject(uow, receipt, _reason(outcome))  # the claim and the effect were rolled back


def _apply(
    uow: IngestionUnitOfWork, receipt: EventReceipt, effect: EventEffect
) -> IngestionResult | errors.WalletServiceError:
    """Claim the event and apply its effect in the open transaction (or savepoint). A rule that says
    it can never apply is returned, not raised: the caller undoes the writes, then records it."""
    if not uow.provider_events.claim(receipt.provider, receipt.event_id, receipt.type, receipt.payload):
        return IngestionResult(Disposition.DUPLICATE)
    try:
        applied = effect(uow, provider_principal(receipt.provider))
    except _RETRY_LATER:
        raise  # the caller's rollback undoes the claim too
    except errors.WalletServiceError as error:
        return error
    if applied.unresolved is not None:
        uow.provider_events.mark_unresolved(
            receipt.provider,
            receipt.event_id,
            hold_id=applied.unresolved.hold_id,
            reason=applied.unresolved.reason,
        )
        return IngestionResult(Disposition.UNRESOLVED, applied, reason=applied.unresolved.reason)
    uow.provider_events.mark_applied(
        receipt.provider,
        receipt.event_id,
        transaction_id=applied.transaction.id if applied.transaction else None,
        hold_id=applied.hold_id,
    )
    return IngestionResult(Disposition.APPLIED, applied)


def _reason(rejection: errors.WalletServiceError) -> str:
    return f"{rejection.code}: {rejection.detail}"


# --- Batches -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchItem:
    """One record of a batch: an event of the contract (`action`, applied by the server-side call),
    another effect to apply in Python (`effect`), or one already known never to apply (`rejection`,
    its reason), recorded as rejected."""

    receipt: EventReceipt
    effect: EventEffect | None = None
    rejection: str | None = None
    action: Action | None = None


_UNDECIDED = RuntimeError("the record was not decided")  # unreachable: every chunk decides all its records

# What became of a record: its result once committed, or the error it is redelivered for.
Outcome = IngestionResult | Exception


def ingest_batch(new_uow: Callable[[], BatchUnitOfWork], items: Sequence[BatchItem]) -> list[Outcome]:
    """Apply a batch, RECORDS_PER_TRANSACTION records per transaction; the outcomes are in the items'
    order. An item twice in one batch applies once: the second finds the first's row in the same
    transaction (and both are redelivered if that transaction fails)."""
    outcomes: list[Outcome | None] = [None] * len(items)
    for start in range(0, len(items), RECORDS_PER_TRANSACTION):
        _apply_chunk(new_uow, items, range(start, min(start + RECORDS_PER_TRANSACTION, len(items))), outcomes)
    return [outcome if outcome is not None else _UNDECIDED for outcome in outcomes]


def _apply_chunk(
    new_uow: Callable[[], BatchUnitOfWork],
    items: Sequence[BatchItem],
    chunk: range,
    outcomes: list[Outcome | None],
) -> None:
    decided: dict[int, Outcome] = {}
    # Records that met a deadlock or a lock timeout in Python: their savepoint is undone, but the
    # locks of the records before them are held until the commit, so trying again in this
    # transaction would wait on the same batch again. They run on their own once it has committed.
    after_commit: list[int] = []
    committing = False
    try:
        uow = new_uow()
        with uow:
            in_call: list[int] = []  # consecutive records for one server-side call
            for index in chunk:
                if items[index].action is not None:
                    in_call.append(index)
                    continue
                _apply_in_one_call(uow, items, in_call, decided)
                in_call = []
                try:
                    decided[index] = _apply_in_savepoint(uow, items[index])
                except errors.ServiceUnavailableError:
                    raise  # the connection, and the transaction with it, is gone
                except errors.ConcurrencyConflictError:
                    after_commit.append(index)
                except Exception as error:  # not yet, or a fault of this record alone
                    decided[index] = error
            _apply_in_one_call(uow, items, in_call, decided)
            committing = True
            uow.commit()
    except (errors.ConnectionLostError, errors.ConcurrencyConflictError):
        # Nothing of the transaction committed (the connection broke before COMMIT, the call lost a
        # race, or the commit itself lost a conflict): every record of it runs again, each in its
        # own transaction.
        decided, after_commit = {}, list(chunk)
    except errors.ServiceUnavailableError as error:
        # The database is unreachable, or the commit's outcome is unknown: redelivery decides (a
        # record that did commit is then a duplicate, acknowledged without a second effect).
        decided, after_commit = dict.fromkeys(chunk, error), []
    except Exception as error:
        if committing:  # the commit's outcome is unknown, as above
            decided, after_commit = dict.fromkeys(chunk, error), []
        else:
            # The server-side call failed (a fault of one of its records: nothing of the transaction
            # commits); each record on its own, so that one fault never fails its neighbours.
            decided, after_commit = {}, list(chunk)
    for index, outcome in decided.items():
        outcomes[index] = outcome
    for index in after_commit:
        outcomes[index] = _apply_alone(new_uow, items[index])


def _apply_in_one_call(
    uow: BatchUnitOfWork, items: Sequence[BatchItem], indexes: list[int], decided: dict[int, Outcome]
) -> None:
    if not indexes:
        return
    answers = uow.event_batches.apply([_record(items[index]) for index in indexes])
    for index, answer in zip(indexes, answers, strict=True):
        decided[index] = _outcome(items[index], answer)


def _apply_in_savepoint(uow: BatchUnitOfWork, item: BatchItem) -> IngestionResult:
    receipt = item.receipt
    with uow.savepoint() as savepoint:
        if item.effect is None:
            return _recorded_rejection(uow, receipt, item.rejection or "rejected")
        outcome = _apply(uow, receipt, item.effect)
        if isinstance(outcome, IngestionResult):
            return outcome
        savepoint.rollback()  # the claim and whatever the effect wrote
        return _recorded_rejection(uow, receipt, _reason(outcome))


def _apply_alone(new_uow: Callable[[], BatchUnitOfWork], item: BatchItem) -> Outcome:
    try:
        if item.action is not None:
            return _call_alone(new_uow, item)
        if item.effect is None:
            return reject(new_uow(), item.receipt, item.rejection or "rejected")
        return ingest(new_uow(), item.receipt, item.effect)
    except Exception as error:
        return error


def _call_alone(new_uow: Callable[[], BatchUnitOfWork], item: BatchItem) -> Outcome:
    """The server-side call for one record, in a transaction of its own. Deadlocks, a lost race for
    the event's key and a lost connection roll the attempt back and run it again."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            uow = new_uow()
            with uow:
                answer = uow.event_batches.apply([_record(item)])[0]
                uow.commit()
            return _outcome(item, answer)
        except (errors.ConcurrencyConflictError, errors.ConnectionLostError):
            if attempt == MAX_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _record(item: BatchItem) -> EventRecord:
    receipt = item.receipt
    if item.action is None:  # pragma: no cover - only records with an action are sent
        raise ValueError("the record has no action for the server-side call")
    return EventRecord(
        provider=receipt.provider,
        event_id=receipt.event_id,
        type=receipt.type,
        payload=receipt.payload,
        created_by=provider_principal(receipt.provider).subject,
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
            effect = Effect(transaction_id=answer.transaction_id, hold_id=answer.hold_id, snapshot=snapshot)
            return IngestionResult(Disposition.APPLIED, effect)
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
                Effect(hold_id=answer.hold_id, unresolved=unresolved),
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


def reject(uow: IngestionUnitOfWork, receipt: EventReceipt, reason: str) -> IngestionResult:
    """Record an event that can never apply. If a twin delivery recorded the key first, its outcome
    stands and this one is a duplicate."""
    with uow:
        result = _recorded_rejection(uow, receipt, reason)
        uow.commit()
    return result


def _recorded_rejection(uow: IngestionUnitOfWork, receipt: EventReceipt, reason: str) -> IngestionResult:
    recorded = uow.provider_events.add_rejected(
        receipt.provider, receipt.event_id, receipt.type, receipt.payload, reason
    )
    if not recorded:
        return IngestionResult(Disposition.DUPLICATE)
    return IngestionResult(Disposition.REJECTED, reason=reason)


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
