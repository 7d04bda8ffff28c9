"""GET /v1/wallets: the caller's wallets (another owner's: admin only), newest first."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_query
from wallet_core.http.presenters import page_resource, wallet_resource
from wallet_core.service import wallets

app = create_app()


@app.get(
    "/v1/wallets",
    **openapi.query(
        operation_id="listWallets",
        summary="List wallets",
        description="The caller's wallets (or `owner_id`'s), newest first. `limit` 1..100, default 25; "
        "follow `next_cursor` for the next page.",
        tag="wallets",
        model=openapi.WalletPage,
        admin_fields="`?owner_id=` of another owner",
    ),
)
def wallet_list(
    owner_id: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
):
    return run_query(
        app,
        lambda uow, principal: wallets.list_wallets(
            uow, principal, owner_id=owner_id, limit=limit, cursor=cursor
        ),
        present=lambda page: page_resource(page, wallet_resource),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
