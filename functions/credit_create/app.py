"""POST /v1/wallets/{wallet_id}/credits: money enters the ledger into a wallet (admin)."""

from __future__ import annotations

import uuid

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_command
from wallet_core.http.presenters import transaction_resource
from wallet_core.http.schemas import MovementRequest
from wallet_core.service import ledger

app = create_app(admin_only=True)


@app.post(
    "/v1/wallets/<wallet_id>/credits",
    **openapi.command(
        operation_id="creditWallet",
        summary="Credit a wallet",
        description="Money enters the ledger into the wallet. A frozen wallet accepts credits.",
        tag="movements",
        model=openapi.Transaction,
        location="/v1/transactions/{id}",
        admin=True,
        problems={404: ["not_found"], 422: ["wallet_closed", "balance_limit_exceeded"]},
        links=openapi.CREDIT_LINKS,
        examples={
            "top_up": {"amount": 10000, "reference": "bank-transfer-42", "metadata": {"channel": "sepa"}}
        },
    ),
)
def credit_create(wallet_id: uuid.UUID, body: MovementRequest):
    memo = ledger.Memo(reference=body.reference, description=body.description, metadata=body.metadata)
    return run_command(
        app,
        lambda uow, principal: ledger.credit_wallet(uow, principal, wallet_id, body.amount, memo),
        status=201,
        present=transaction_resource,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
