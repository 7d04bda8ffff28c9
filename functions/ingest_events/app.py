"""SQS ingestion queue: provider events (deposit.settled, withdrawal.settled, withdrawal.failed,
balance.reported), answered with partial batch failures (ReportBatchItemFailures)."""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.sqs.consumer import ingest_batch, logger


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    return ingest_batch(event, context)
