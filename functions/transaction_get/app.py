"""GET /v1/transactions/{transaction_id}: one transaction (involved owner or admin)."""

from __future__ import annotations

import uuid

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_query
from wallet_core.http.presenters import transaction_resource
from wallet_core.service import ledger

app = create_app()


@app.get(
    "/v1/transactions/<transaction_id>",
    **openapi.query(
        operation_id="getTransaction",
        summary="Read a transaction",
        description="A transaction that touches one of the caller's wallets (any, for an admin).",
        tag="movements",
        model=openapi.Transaction,
        problems={404: ["not_found"]},
        links=openapi.TRANSACTION_LINKS,
    ),
)
def transaction_get(transaction_id: uuid.UUID):
    return run_query(
        app,
        lambda uow, principal: ledger.get_transaction(uow, principal, transaction_id),
        present=transaction_resource,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
