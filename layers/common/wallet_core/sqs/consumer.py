"""The ingestion queue's consumer: a batch of records is applied in few database transactions (one
server-side call each, see service.ingestion.ingest_batch); a record that may apply later (or met a
database failure) is reported in batchItemFailures so SQS delivers it again, and one bad record never
fails the rest of its batch."""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from wallet_core.adapters.event_batches import (
    Action,
    BalanceReport,
    Deposit,
    PayoutFailure,
    Rejection,
    Settlement,
)
from wallet_core.adapters.uow import SqlUnitOfWork
from wallet_core.config import get_settings
from wallet_core.domain import errors
from wallet_core.service import ingestion
from wallet_core.service.ingestion import BatchItem, Disposition, IngestionResult
from wallet_core.sqs.schemas import (
    BalanceReported,
    DepositSettled,
    Invalid,
    Unkeyed,
    Valid,
    WithdrawalFailed,
    WithdrawalSettled,
    parse_message,
)

DEFAULT_METRICS_NAMESPACE = "Wallet"
DRIFT_METRIC = "BalanceDrift"
# One per settlement held for an operator (alarm on Sum > 0); emitted only when it happens.
UNRESOLVED_METRIC = "UnresolvedSettlements"

logger = Logger()


@functools.cache
def get_metrics() -> Metrics:
    # Created on first use, not at import: the namespace comes from the environment.
    return Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE)


def ingest_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda's partial batch response (ReportBatchItemFailures): the message ids SQS delivers again.
    Even a batch in which every record must be retried is answered this way (not with an exception):
    SQS acts the same and the function's error metric stays for real faults."""
    records = event.get("Records") or []
    keyed: list[tuple[dict[str, Any], BatchItem, dict[str, str]]] = []
    failed: list[str] = []
    for record in records:
        try:
            item = _item(record)
        except Exception as error:  # a bug in parsing: retried, and said so
            logger.error(
                "provider event failed unexpectedly, left for redelivery",
                exc_info=error,
                extra={"message_id": record.get("messageId"), "reason": type(error).__name__},
            )
            failed.append(record["messageId"])
            continue
        if item is not None:
            keyed.append((record, item[0], item[1]))
    try:
        outcomes = ingestion.ingest_batch(SqlUnitOfWork, [item for _, item, _ in keyed])
        for (record, _, fields), outcome in zip(keyed, outcomes, strict=True):
            if isinstance(outcome, Exception):
                _report_failure(outcome, fields)
                failed.append(record["messageId"])
            else:
                _report(outcome, fields)
    finally:
        metrics = get_metrics()
        if metrics.metric_set:
            metrics.flush_metrics()
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _item(record: dict[str, Any]) -> tuple[BatchItem, dict[str, str]] | None:
    """What to do with a record (and the fields its log lines carry); None when it cannot be keyed."""
    message = parse_message(record["body"])
    if isinstance(message, Unkeyed):
        # Nothing to key a rejection on: retrying cannot help and there is no row to write.
        logger.error(
            "provider event acknowledged without a record",
            extra={"message_id": record.get("messageId"), "reason": message.reason},
        )
        return None
    receipt = message.receipt
    context = {"provider": receipt.provider, "event_id": receipt.event_id, "event_type": receipt.type}
    settings = get_settings()
    refused = ingestion.provider_rejection(receipt, settings.wallet_providers, settings.wallet_bound_provider)
    if refused is not None:
        receipt, reason = refused
        context["provider"] = receipt.provider
        return BatchItem(receipt, action=Rejection(reason)), context
    if isinstance(message, Invalid):
        return BatchItem(receipt, action=Rejection(message.reason)), context
    return BatchItem(receipt, action=action_of(message)), context


def action_of(message: Valid) -> Action:
    """What the event asks of the ledger; its rules are in the server-side function that applies it
    (migrations/versions/0005_provider_event_batches.py)."""
    event = message.event
    provider = message.receipt.provider  # normalised
    # What the posted transaction's metadata says about where it came from.
    origin = {"provider": provider, "event_id": event.event_id}
    match event:
        case DepositSettled():
            return Deposit(
                event.wallet_id,
                event.external_ref,
                event.amount,
                event.currency,
                reference=event.reference,
                description=f"deposit.settled from {provider}",
                metadata=origin,
            )
        case WithdrawalSettled():
            return Settlement(
                hold_id=event.hold_id, amount=event.amount, currency=event.currency, metadata=origin
            )
        case WithdrawalFailed():
            return PayoutFailure(hold_id=event.hold_id)
        case BalanceReported():
            return BalanceReport(
                event.wallet_id, event.external_ref, event.balance, event.currency, event.occurred_at
            )
    raise AssertionError(f"no action for {type(event).__name__}")  # pragma: no cover


def _report_failure(error: Exception, context: dict[str, str]) -> None:
    if isinstance(error, errors.NotFoundError):
        logger.info(
            "provider event not applicable yet, left for redelivery",
            extra={**context, "reason": error.detail},
        )
    elif isinstance(error, (errors.ServiceUnavailableError, errors.ConcurrencyConflictError)):
        logger.warning(
            "provider event hit a transient failure, left for redelivery",
            extra={**context, "reason": error.code},
        )
    else:
        # Not a rule of the contract: a bug or a fault. Retried (and dead-lettered in the end), but
        # never silently: the DLQ alarm needs a log line that says which event and why.
        logger.error(
            "provider event failed unexpectedly, left for redelivery",
            exc_info=error,
            extra={**context, "reason": type(error).__name__},  # details are in the trace
        )


def _report(result: IngestionResult, context: dict[str, str]) -> None:
    if result.disposition is Disposition.REJECTED:
        logger.warning("provider event rejected", extra={**context, "reason": result.reason})
    elif result.disposition is Disposition.UNRESOLVED:
        unresolved = result.effect.unresolved
        get_metrics().add_metric(name=UNRESOLVED_METRIC, unit=MetricUnit.Count, value=1)
        logger.error(
            "provider settlement held for an operator: the wallet cannot cover it",
            extra={
                **context,
                "reason": result.reason,
                "unresolved_settlement_id": str(unresolved.id) if unresolved else None,
            },
        )
    else:
        logger.info(f"provider event {result.disposition}", extra=context)
    snapshot = result.effect.snapshot
    if snapshot is None:
        return
    # Emitted for every report (zeros prove reconciliation runs); alarm on its Maximum > 0.
    get_metrics().add_metric(name=DRIFT_METRIC, unit=MetricUnit.Count, value=abs(snapshot.drift))
    if snapshot.drift != 0:
        logger.warning(
            "provider balance differs from the ledger",
            extra={
                **context,
                "wallet_id": str(snapshot.wallet_id),
                "reported_balance": snapshot.reported_balance,
                "ledger_balance": snapshot.ledger_balance,
                "drift": snapshot.drift,
            },
        )
