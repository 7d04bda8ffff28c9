"""CodeDeploy BeforeAllowTraffic (PreTraffic) hook: is the NEW version ready before it gets traffic?

It invokes the new version of the readiness function (READY_FUNCTION_ARN, a qualified version ARN)
with the API Gateway HTTP API event of `GET /ready`: 200 with status "ready" means the database is
reachable and at the schema head that version expects. Optionally (VERSION_FUNCTION_ARN and
EXPECTED_GIT_SHA both set) the new version of the version function must report that git SHA.

Whatever happens, CodeDeploy is told exactly once, Succeeded or Failed; an exception in a check is
a Failed, never a silence that leaves the deployment waiting for its hour.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

logger = Logger(service="wallet-deploy-hooks")

SUCCEEDED = "Succeeded"
FAILED = "Failed"
READY_STATUSES = {"ready", "ok"}
SCHEMA_AHEAD = "schema_ahead"
# Both probes and the report fit in a 60 s hook: a probe waits out the probed function's own 15 s
# timeout but is not retried (a probe that fails once fails the deployment, the safe direction).
_LAMBDA_CONFIG = Config(connect_timeout=3, read_timeout=20, retries={"max_attempts": 1, "mode": "standard"})
_CODEDEPLOY_CONFIG = Config(
    connect_timeout=3, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}
)


class CheckFailedError(Exception):
    """A probe of the new version did not answer what a healthy version answers."""


@functools.cache
def lambda_client():
    return boto3.client("lambda", config=_LAMBDA_CONFIG)


@functools.cache
def codedeploy_client():
    return boto3.client("codedeploy", config=_CODEDEPLOY_CONFIG)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deployment_id = event["DeploymentId"]
    execution_id = event["LifecycleEventHookExecutionId"]
    logger.append_keys(deployment_id=deployment_id)

    try:
        checks = run_checks(deployment_id)
        status = SUCCEEDED
        detail = "; ".join(checks)
        logger.info("the new version is ready", extra={"checks": checks})
    except CheckFailedError as exc:
        status, detail = FAILED, str(exc)
        logger.error("the new version is not ready", extra={"detail": detail})
    except Exception as exc:
        status, detail = FAILED, f"check raised {type(exc).__name__}"
        logger.exception("the readiness check itself failed")

    codedeploy_client().put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
    )
    return {"status": status, "detail": detail}


def run_checks(deployment_id: str) -> list[str]:
    """Every check of the new version; raises CheckFailedError on the first that does not pass."""
    ready_arn = os.environ.get("READY_FUNCTION_ARN", "")
    if not ready_arn:
        raise CheckFailedError("READY_FUNCTION_ARN is not set")
    status_code, body = invoke_probe(ready_arn, "/ready", deployment_id)
    if status_code == 200 and body.get("status") in READY_STATUSES:
        checks = [f"/ready 200 at schema {body.get('schema_revision')}"]
    elif body.get("reason") == SCHEMA_AHEAD:
        # Redeploying an older release (manual rollback): a newer one already migrated, and
        # expand/contract keeps older code working on the newer schema. Failing here would leave
        # the rollback stuck.
        checks = [f"/ready: schema {body.get('schema_revision')} is ahead of this release; expand/contract"]
    else:
        raise CheckFailedError(
            f"/ready answered {status_code} {body.get('status')!r} ({body.get('reason', 'no reason')})"
        )

    expected_sha = os.environ.get("EXPECTED_GIT_SHA", "")
    version_arn = os.environ.get("VERSION_FUNCTION_ARN", "")
    if expected_sha and version_arn:
        status_code, body = invoke_probe(version_arn, "/version", deployment_id)
        if status_code != 200 or body.get("git_sha") != expected_sha:
            raise CheckFailedError(
                f"/version answered {status_code} git_sha {body.get('git_sha')!r}, expected {expected_sha!r}"
            )
        checks.append(f"/version reports {expected_sha}")
    return checks


def invoke_probe(function_arn: str, path: str, deployment_id: str) -> tuple[int, dict[str, Any]]:
    """Invoke one function version synchronously as the HTTP API would; (status code, JSON body)."""
    response = lambda_client().invoke(
        FunctionName=function_arn,
        InvocationType="RequestResponse",
        Payload=json.dumps(probe_event(path, deployment_id)).encode(),
    )
    raw = response["Payload"].read()
    if response.get("FunctionError"):
        raise CheckFailedError(f"{path}: the function failed ({response['FunctionError']})")
    try:
        result = json.loads(raw)
        body = result.get("body") or "{}"
        parsed = json.loads(body) if isinstance(body, str) else body
        status_code = int(result["statusCode"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckFailedError(f"{path}: unparsable response ({type(exc).__name__})") from exc
    if not isinstance(parsed, dict):
        raise CheckFailedError(f"{path}: the body is not a JSON object")
    return status_code, parsed


def probe_event(path: str, deployment_id: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for `GET <path>`, without authorizer claims."""
    now = datetime.now(UTC)
    user_agent = "wallet-pretraffic-hook"
    return {
        "version": "2.0",
        "routeKey": f"GET {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "user-agent": user_agent,
            "x-codedeploy-deployment-id": deployment_id,
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "pretraffic-hook",
            "domainName": "pretraffic-hook.local",
            "domainPrefix": "pretraffic-hook",
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": user_agent,
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"GET {path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
