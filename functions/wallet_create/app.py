"""POST /v1/wallets: open a wallet (for another owner: admin only)."""

from __future__ import annotations

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_command
from wallet_core.http.presenters import wallet_resource
from wallet_core.http.schemas import WalletCreateRequest
from wallet_core.service import wallets

app = create_app()


@app.post(
    "/v1/wallets",
    **openapi.command(
        operation_id="createWallet",
        summary="Open a wallet",
        description="Opens a wallet in `currency` for the caller, or for `owner_id`. A wallet's currency never changes.",
        tag="wallets",
        model=openapi.Wallet,
        location="/v1/wallets/{id}",
        admin_fields="`owner_id` or `external_ref`",
        problems={409: ["external_ref_in_use"]},
        links=openapi.WALLET_LINKS,
        examples={
            "own_wallet": {"currency": "USD"},
            "for_another_owner": {
                "currency": "EUR",
                "owner_id": "user-2",
                "external_ref": "acme-acct-1001",
                "metadata": {"tier": "gold"},
            },
        },
    ),
)
def wallet_create(body: WalletCreateRequest):
    return run_command(
        app,
        lambda uow, principal: wallets.create_wallet(
            uow,
            principal,
            currency=body.currency,
            owner_id=body.owner_id,
            external_ref=body.external_ref,
            metadata=body.metadata,
        ),
        status=201,
        present=wallet_resource,
        authorize=lambda principal: wallets.authorize_create_wallet(
            principal, owner_id=body.owner_id, external_ref=body.external_ref
        ),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
