"""GET /v1/wallets/{wallet_id}: one wallet (owner or admin)."""

from __future__ import annotations

import uuid

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_query
from wallet_core.http.presenters import wallet_resource
from wallet_core.service import wallets

app = create_app()


@app.get(
    "/v1/wallets/<wallet_id>",
    **openapi.query(
        operation_id="getWallet",
        summary="Read a wallet",
        description="A wallet its owner (or an admin) can see; any other answers 404.",
        tag="wallets",
        model=openapi.Wallet,
        problems={404: ["not_found"]},
    ),
)
def wallet_get(wallet_id: uuid.UUID):
    return run_query(
        app, lambda uow, principal: wallets.get_wallet(uow, principal, wallet_id), present=wallet_resource
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
