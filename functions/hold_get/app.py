"""GET /v1/holds/{hold_id}: one hold (owner of its wallet or admin)."""

from __future__ import annotations

import uuid

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_query
from wallet_core.http.presenters import hold_resource
from wallet_core.service import holds

app = create_app()


@app.get(
    "/v1/holds/<hold_id>",
    **openapi.query(
        operation_id="getHold",
        summary="Read a hold",
        description="A hold on one of the caller's wallets (any, for an admin).",
        tag="holds",
        model=openapi.Hold,
        problems={404: ["not_found"]},
        links=openapi.HOLD_LINKS,
    ),
)
def hold_get(hold_id: uuid.UUID):
    return run_query(
        app, lambda uow, principal: holds.get_hold(uow, principal, hold_id), present=hold_resource
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
