"""POST /v1/transactions/{transaction_id}/reversals: undo a transaction once (admin)."""

from __future__ import annotations

import uuid
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_command
from wallet_core.http.presenters import transaction_resource
from wallet_core.http.schemas import ReversalCreateRequest
from wallet_core.service import ledger

app = create_app(admin_only=True)


@app.post(
    "/v1/transactions/<transaction_id>/reversals",
    **openapi.command(
        operation_id="createReversal",
        summary="Reverse a transaction",
        description="Moves the original amount back, at most once: a credit is reversed by a debit "
        "of its wallet, a transfer by a transfer the other way. The body is optional.",
        tag="movements",
        model=openapi.Transaction,
        location="/v1/transactions/{id}",
        admin=True,
        problems={
            404: ["not_found"],
            409: ["already_reversed", "invalid_state"],
            422: [
                "insufficient_funds",
                "wallet_frozen",
                "wallet_closed",
                "currency_mismatch",
                "balance_limit_exceeded",
            ],
        },
        links=openapi.TRANSACTION_LINKS,
        examples={"dispute": {"reason": "dispute"}},
    ),
)
def reversal_create(transaction_id: uuid.UUID, body: Annotated[ReversalCreateRequest | None, Body()] = None):
    reason = body.reason if body else None
    return run_command(
        app,
        lambda uow, principal: ledger.reverse_transaction(uow, principal, transaction_id, reason=reason),
        status=201,
        present=transaction_resource,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
