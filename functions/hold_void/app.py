"""POST /v1/holds/{hold_id}/void: release what a hold has not captured (admin)."""

from __future__ import annotations

import uuid

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_command
from wallet_core.http.presenters import hold_resource
from wallet_core.service import holds

app = create_app(admin_only=True)


@app.post(
    "/v1/holds/<hold_id>/void",
    **openapi.command(
        operation_id="voidHold",
        summary="Void a hold",
        description="Releases what the hold has not captured.",
        tag="holds",
        model=openapi.Hold,
        status=200,
        admin=True,
        problems={404: ["not_found"], 409: ["invalid_state"]},
        links=openapi.HOLD_LINKS,
    ),
)
def hold_void(hold_id: uuid.UUID):
    return run_command(
        app,
        lambda uow, principal: holds.void_hold(uow, principal, hold_id),
        status=200,
        present=hold_resource,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
