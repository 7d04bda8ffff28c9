"""GET /v1/wallets/{wallet_id}/transactions: the wallet's entries, newest first."""

from __future__ import annotations

import uuid
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_query
from wallet_core.http.presenters import history_item_resource, page_resource
from wallet_core.service import wallets

app = create_app()


@app.get(
    "/v1/wallets/<wallet_id>/transactions",
    **openapi.query(
        operation_id="listWalletTransactions",
        summary="A wallet's history",
        description="The wallet's entries, newest first, each with its signed `entry_amount` and the "
        "`balance_after` it. `limit` 1..100, default 25; follow `next_cursor` for the next page.",
        tag="wallets",
        model=openapi.HistoryPage,
        problems={404: ["not_found"]},
    ),
)
def wallet_history(
    wallet_id: uuid.UUID,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
):
    return run_query(
        app,
        lambda uow, principal: wallets.wallet_history(uow, principal, wallet_id, limit=limit, cursor=cursor),
        present=lambda page: page_resource(page, history_item_resource),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
