"""GET /ready: 200 only when the database is at the schema head this build expects."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.adapters.schema import inspect_schema
from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger
from wallet_core.http.presenters import to_json
from wallet_core.service import probes

app = create_app()


@app.get(
    "/ready",
    **openapi.probe(
        operation_id="ready",
        summary="Readiness",
        description="200 only when the database is reachable, at the schema revision this build "
        "expects, with every required table. No auth.",
        model=openapi.Readiness,
        unavailable=True,
    ),
)
def ready():
    status, body = probes.readiness(inspect_schema)
    return Response(status_code=status, content_type="application/json", body=to_json(body))


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
