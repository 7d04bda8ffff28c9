"""GET /version: what build is serving (no secrets): version, commit, build time, the CI run number
and branch it was built from (CI_RUN_NUMBER, GIT_BRANCH), stage, function version, schema head."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_core.config import get_settings
from wallet_core.http import openapi
from wallet_core.http.api import create_app, logger
from wallet_core.http.presenters import to_json
from wallet_core.service import probes

app = create_app()


@app.get(
    "/version",
    **openapi.probe(
        operation_id="version",
        summary="Build information",
        description="What build is serving. No auth, no secrets.",
        model=openapi.VersionInfo,
        unavailable=False,
    ),
)
def version():
    body = probes.version(get_settings(), app.lambda_context.function_version)
    return Response(status_code=200, content_type="application/json", body=to_json(body))


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
