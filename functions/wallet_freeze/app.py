"""POST /v1/wallets/{wallet_id}/freeze: freeze a wallet (admin)."""

from __future__ import annotations

import uuid

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_command
from wallet_core.http.presenters import wallet_resource
from wallet_core.service import wallets

app = create_app(admin_only=True)


@app.post(
    "/v1/wallets/<wallet_id>/freeze",
    **openapi.command(
        operation_id="freezeWallet",
        summary="Freeze a wallet",
        description="A frozen wallet accepts credits and incoming transfers, but no debits, outgoing "
        "transfers or new holds. Only an active wallet can be frozen.",
        tag="wallets",
        model=openapi.Wallet,
        status=200,
        admin=True,
        problems={404: ["not_found"], 409: ["invalid_state"], 422: ["wallet_closed"]},
        links=openapi.WALLET_LINKS,
    ),
)
def wallet_freeze(wallet_id: uuid.UUID):
    return run_command(
        app,
        lambda uow, principal: wallets.freeze_wallet(uow, principal, wallet_id),
        status=200,
        present=wallet_resource,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
