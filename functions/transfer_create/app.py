"""POST /v1/transfers: move money between two wallets of one currency."""

from __future__ import annotations

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_command
from wallet_core.http.presenters import transaction_resource
from wallet_core.http.schemas import TransferCreateRequest
from wallet_core.service import ledger

app = create_app()


@app.post(
    "/v1/transfers",
    **openapi.command(
        operation_id="createTransfer",
        summary="Transfer between wallets",
        description="Moves `amount` from a wallet the caller owns (any wallet, for an admin) to any "
        "active or frozen wallet of the same currency. A source the caller cannot use answers 404.",
        tag="movements",
        model=openapi.Transaction,
        location="/v1/transactions/{id}",
        problems={
            404: ["not_found"],
            422: [
                "insufficient_funds",
                "currency_mismatch",
                "wallet_frozen",
                "wallet_closed",
                "same_wallet",
                "balance_limit_exceeded",
            ],
        },
        links=openapi.TRANSACTION_LINKS,
        examples={
            "rent": {
                "source_wallet_id": "3f2b6c1e-8a4d-4e0b-9b1a-2c5d7e9f0a11",
                "destination_wallet_id": "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
                "amount": 2500,
                "currency": "USD",
                "reference": "rent-2026-11",
                "description": "November rent",
            }
        },
    ),
)
def transfer_create(body: TransferCreateRequest):
    memo = ledger.Memo(reference=body.reference, description=body.description, metadata=body.metadata)
    return run_command(
        app,
        lambda uow, principal: ledger.transfer(
            uow,
            principal,
            source_wallet_id=body.source_wallet_id,
            destination_wallet_id=body.destination_wallet_id,
            amount=body.amount,
            currency=body.currency,
            memo=memo,
        ),
        status=201,
        present=transaction_resource,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
