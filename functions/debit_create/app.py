"""POST /v1/wallets/{wallet_id}/debits: money leaves the ledger from a wallet (admin)."""

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
    "/v1/wallets/<wallet_id>/debits",
    **openapi.command(
        operation_id="debitWallet",
        summary="Debit a wallet",
        description="Money leaves the ledger from the wallet's available balance.",
        tag="movements",
        model=openapi.Transaction,
        location="/v1/transactions/{id}",
        admin=True,
        problems={404: ["not_found"], 422: ["insufficient_funds", "wallet_frozen", "wallet_closed"]},
        links=openapi.TRANSACTION_LINKS,
        examples={"fee": {"amount": 150, "reference": "fee-2026-11", "description": "Monthly fee"}},
    ),
)
def debit_create(wallet_id: uuid.UUID, body: MovementRequest):
    memo = ledger.Memo(reference=body.reference, description=body.description, metadata=body.metadata)
    return run_command(
        app,
        lambda uow, principal: ledger.debit_wallet(uow, principal, wallet_id, body.amount, memo),
        status=201,
        present=transaction_resource,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
