"""POST /v1/holds/{hold_id}/capture: take all or part of a hold, to a wallet or out of the ledger (admin)."""

from __future__ import annotations

import uuid
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_command
from wallet_core.http.presenters import transaction_resource
from wallet_core.http.schemas import HoldCaptureRequest
from wallet_core.service import holds

app = create_app(admin_only=True)


@app.post(
    "/v1/holds/<hold_id>/capture",
    **openapi.command(
        operation_id="captureHold",
        summary="Capture a hold",
        description="Takes `amount` (default: all that remains) of an active hold, to "
        "`destination_wallet_id` or, without one, out of the ledger (a withdrawal). Repeatable "
        "until the hold is fully captured. The body is optional.",
        tag="holds",
        model=openapi.Transaction,
        location="/v1/transactions/{id}",
        admin=True,
        problems={
            404: ["not_found"],
            409: ["invalid_state"],
            422: [
                "amount_exceeds_hold",
                "currency_mismatch",
                "wallet_closed",
                "same_wallet",
                "balance_limit_exceeded",
            ],
        },
        links=openapi.TRANSACTION_LINKS,
        examples={
            "part_out_of_the_ledger": {"amount": 1500},
            "all_to_a_wallet": {"destination_wallet_id": "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"},
        },
    ),
)
def hold_capture(hold_id: uuid.UUID, body: Annotated[HoldCaptureRequest | None, Body()] = None):
    request = body or HoldCaptureRequest()
    return run_command(
        app,
        lambda uow, principal: holds.capture_hold(
            uow,
            principal,
            hold_id,
            amount=request.amount,
            destination_wallet_id=request.destination_wallet_id,
        ),
        status=201,
        present=transaction_resource,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
