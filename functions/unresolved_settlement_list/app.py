"""GET /v1/settlements/unresolved: provider settlements the ledger could not post, for operators (admin)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_query
from wallet_core.http.presenters import page_resource, unresolved_settlement_resource
from wallet_core.service import ingestion

app = create_app(admin_only=True)


@app.get(
    "/v1/settlements/unresolved",
    **openapi.query(
        operation_id="listUnresolvedSettlements",
        summary="Provider settlements held for an operator",
        description="`withdrawal.settled` events whose hold had lapsed and whose wallet could not cover "
        "them: the money has left at the provider and the ledger has not posted it. Newest first. "
        "`limit` 1..100, default 25.",
        tag="operations",
        model=openapi.UnresolvedSettlementPage,
        admin=True,
    ),
)
def unresolved_settlement_list(
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
):
    return run_query(
        app,
        lambda uow, principal: ingestion.list_unresolved_settlements(
            uow, principal, limit=limit, cursor=cursor
        ),
        present=lambda page: page_resource(page, unresolved_settlement_resource),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
