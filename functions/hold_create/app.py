"""POST /v1/holds: reserve part of a wallet's available money (admin)."""

from __future__ import annotations

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_command
from wallet_core.http.presenters import hold_resource
from wallet_core.http.schemas import HoldCreateRequest
from wallet_core.service import holds

app = create_app(admin_only=True)


@app.post(
    "/v1/holds",
    **openapi.command(
        operation_id="createHold",
        summary="Place a hold",
        description="Reserves `amount` of the wallet's available money until `expires_at` (default 7 "
        "days, at most 30 days ahead). Not on a frozen or closed wallet.",
        tag="holds",
        model=openapi.Hold,
        location="/v1/holds/{id}",
        admin=True,
        problems={404: ["not_found"], 422: ["insufficient_funds", "wallet_frozen", "wallet_closed"]},
        links=openapi.HOLD_LINKS,
        examples={
            "payout": {
                "wallet_id": "3f2b6c1e-8a4d-4e0b-9b1a-2c5d7e9f0a11",
                "amount": 4000,
                "reference": "payout-7781",
            }
        },
    ),
)
def hold_create(body: HoldCreateRequest):
    return run_command(
        app,
        lambda uow, principal: holds.create_hold(
            uow,
            principal,
            wallet_id=body.wallet_id,
            amount=body.amount,
            reference=body.reference,
            expires_at=body.expires_at,
            purpose=body.purpose,
        ),
        status=201,
        present=hold_resource,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
