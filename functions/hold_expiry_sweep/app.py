"""Scheduled: mark holds past expires_at as expired, for reports. Balances never wait for it:
reads and writes already treat due holds as expired."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.adapters.uow import SqlUnitOfWork
from wallet_core.service import holds

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    result = holds.expire_due_holds(SqlUnitOfWork())
    logger.info("due holds expired", extra={"wallets": result.wallets, "holds": result.holds})
    return {"wallets": result.wallets, "holds": result.holds}
