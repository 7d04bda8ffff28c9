"""GET /health: the function is alive and the database answers a cheap round trip."""

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
    "/health",
    **openapi.probe(
        operation_id="health",
        summary="Liveness",
        description="The function is alive and the database answers a cheap round trip. No auth.",
        model=openapi.Health,
        unavailable=True,
    ),
)
def health():
    status, body = probes.health(inspect_schema)
    return Response(status_code=status, content_type="application/json", body=to_json(body))


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
