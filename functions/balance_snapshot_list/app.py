"""GET /v1/wallets/{wallet_id}/balance-snapshots: provider balance reports and their drift (admin)."""

from __future__ import annotations

import uuid
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger, run_query
from wallet_core.http.presenters import balance_snapshot_resource, page_resource
from wallet_core.service import ingestion

app = create_app(admin_only=True)


@app.get(
    "/v1/wallets/<wallet_id>/balance-snapshots",
    **openapi.query(
        operation_id="listBalanceSnapshots",
        summary="A wallet's provider balance reports",
        description="Balances the provider reported for the wallet and their drift from the ledger, "
        "newest first. `limit` 1..100, default 25.",
        tag="wallets",
        model=openapi.BalanceSnapshotPage,
        admin=True,
        problems={404: ["not_found"]},
    ),
)
def balance_snapshot_list(
    wallet_id: uuid.UUID,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
):
    return run_query(
        app,
        lambda uow, principal: ingestion.list_balance_snapshots(
            uow, principal, wallet_id, limit=limit, cursor=cursor
        ),
        present=lambda page: page_resource(page, balance_snapshot_resource),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
