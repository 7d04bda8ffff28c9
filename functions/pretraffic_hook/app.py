"""CodeDeploy BeforeAllowTraffic (PreTraffic) hook: does the version about to get traffic answer?

Each function's CodeDeploy deployment calls this hook once. It reads that deployment
(codedeploy:GetDeployment; the AppSpec names the function, its alias and the target version), reads
the target version's configuration (lambda:GetFunctionConfiguration with the version as Qualifier)
and invokes THAT version with a harmless request whose answer is known:

- `WALLET_ROUTE` (set on every API function, "<METHOD> <path>"):
  - `GET /ready`: 200 "ready" at the schema head, or 503 `schema_ahead` (an older release on a newer
    schema: a rollback must go through); `GET /health`: 200; `GET /version`: 200, and the git sha
    of this deploy when EXPECTED_GIT_SHA is set;
  - a `/v1` route: an API Gateway HTTP API event from a non-admin test principal, with an id nobody
    has, no Idempotency-Key and a body that is not JSON. A 4xx is the known answer (a GET may also
    answer 200: it reads the probe principal's own, empty, data); a 5xx, an unhandled error or a 2xx
    to a write fails the deployment. Nothing is written: every write needs an Idempotency-Key.
- `WALLET_ROUTE` "SQS ..." (or, without a route, a function whose name says IngestEvents): one
  message without provider/event_id, which the consumer acknowledges without touching the ledger;
  the answer must be an empty `batchItemFailures`.
- anything else (the schedule): the new ReadyFunction version (READY_FUNCTION_ARN), and the new
  VersionFunction version when VERSION_FUNCTION_ARN and EXPECTED_GIT_SHA are set.

Every deployment of a release runs its hook at about the same time (~22): throttling and a version
still being set up (TooManyRequests, ResourceConflict, ResourceNotReady, 5xx) are retried with a
bounded, jittered backoff, but no attempt starts that could not end before the hook must report.
CodeDeploy is told exactly once, Succeeded or Failed, on every path: an exception is a Failed,
never a silence that leaves the deployment waiting for its hour. Invoking a version directly does
not count in the `live` alias' metrics, so these probes never trip the rollback alarms.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

logger = Logger(service="wallet-deploy-hooks")

SUCCEEDED = "Succeeded"
FAILED = "Failed"
READY_STATUSES = {"ready", "ok"}
SCHEMA_AHEAD = "schema_ahead"
PROBE_PATHS = {"/ready", "/health", "/version"}
# A well-formed id that no wallet, hold or transaction has (version-4 layout, all zeros).
PROBE_ID = "00000000-0000-4000-8000-000000000000"
PROBE_SUBJECT = "codedeploy-pretraffic-probe"
INGEST_NAME = "IngestEvents"

# An invoke may wait out the probed function's own 15 s timeout (and a VPC cold start).
INVOKE_READ_TIMEOUT = 20
# Time kept for telling CodeDeploy (with its own retries) after the last check.
REPORT_RESERVE_SECONDS = 8.0
MAX_INVOKE_ATTEMPTS = 6
MAX_REPORT_ATTEMPTS = 4
BASE_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0
JITTER_SECONDS = 0.5
RETRYABLE_INVOKE_ERRORS = {
    "TooManyRequestsException",
    "ThrottlingException",
    "ResourceConflictException",  # the version is still being updated
    "ResourceNotReadyException",  # its network interfaces are still being created
    "EC2ThrottledException",
    "ServiceException",
}
RETRYABLE_REPORT_ERRORS = {
    "ThrottlingException",
    "TooManyRequestsException",
    "InternalFailure",
    "ServiceUnavailable",
}

# SDK retries off for Invoke (the loop below retries, within the hook's time); on for the rest.
_LAMBDA_CONFIG = Config(
    connect_timeout=3, read_timeout=INVOKE_READ_TIMEOUT, retries={"max_attempts": 1, "mode": "standard"}
)
_CODEDEPLOY_CONFIG = Config(
    connect_timeout=3, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}
)
_sleep: Callable[[float], None] = time.sleep


class CheckFailedError(Exception):
    """The new version did not answer what a healthy version answers."""


# A NamedTuple, not a dataclass: the local runtime loads handler modules under unique names.
class Target(NamedTuple):
    logical_id: str
    name: str
    alias: str
    current_version: str
    target_version: str


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
    deadline = Deadline(context)

    try:
        checks = run_checks(deployment_id, deadline)
        status, detail = SUCCEEDED, "; ".join(checks)
        logger.info("the new version answers as expected", extra={"checks": checks})
    except CheckFailedError as exc:
        status, detail = FAILED, str(exc)
        logger.error("the new version does not answer as expected", extra={"detail": detail})
    except Exception as exc:
        status, detail = FAILED, f"check raised {_error_name(exc)}"
        logger.exception("the check itself failed")

    report(deployment_id, execution_id, status)
    return {"status": status, "detail": detail}


class Deadline:
    """What is left of this invocation, minus the time the report needs."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def seconds_left(self) -> float:
        return self._context.get_remaining_time_in_millis() / 1000.0 - REPORT_RESERVE_SECONDS

    def allows_invoke(self) -> bool:
        return self.seconds_left() >= INVOKE_READ_TIMEOUT + 1


def run_checks(deployment_id: str, deadline: Deadline) -> list[str]:
    """Every check of the version(s) this deployment shifts to; CheckFailedError on the first miss."""
    return [check_target(target, deployment_id, deadline) for target in deployment_targets(deployment_id)]


def deployment_targets(deployment_id: str) -> list[Target]:
    info = codedeploy_client().get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    revision = info.get("revision") or {}
    if revision.get("revisionType") != "AppSpecContent":
        raise CheckFailedError(f"deployment revision is {revision.get('revisionType')!r}, not AppSpecContent")
    content = (revision.get("appSpecContent") or {}).get("content") or ""
    try:
        # CloudFormation writes the AppSpec of a Lambda alias update as JSON; an AppSpec may also be
        # YAML (no YAML parser in the Lambda runtime: its flat Lambda form is read line by line).
        appspec = json.loads(content) if content.lstrip().startswith("{") else _flat_yaml_appspec(content)
        resources = appspec["Resources"]
        targets = [
            Target(
                logical_id=logical,
                name=str(spec["Properties"]["Name"]),
                alias=str(spec["Properties"].get("Alias", "")),
                current_version=str(spec["Properties"].get("CurrentVersion", "")),
                target_version=str(spec["Properties"]["TargetVersion"]),
            )
            for resource in resources
            for logical, spec in resource.items()
        ]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckFailedError(
            f"AppSpec without a function and target version ({type(exc).__name__})"
        ) from exc
    if not targets:
        raise CheckFailedError("AppSpec names no function")
    return targets


_YAML_KEY = re.compile(r"^\s*-?\s*([A-Za-z0-9]+):\s*['\"]?([^'\"#]*?)['\"]?\s*$")


def _flat_yaml_appspec(content: str) -> dict[str, Any]:
    """The Lambda AppSpec's YAML form: `Resources: - <LogicalId>: Type/Properties: Name, Alias,
    CurrentVersion, TargetVersion`. Anything it does not recognise leaves a KeyError."""
    resources: list[dict[str, Any]] = []
    for line in content.splitlines():
        match = _YAML_KEY.match(line)
        if not match:
            continue
        key, value = match.groups()
        if line.lstrip().startswith("-") and not value:
            resources.append({key: {"Properties": {}}})
        elif resources and key in {"Name", "Alias", "CurrentVersion", "TargetVersion"}:
            next(iter(resources[-1].values()))["Properties"][key] = value
    return {"Resources": resources}


def check_target(target: Target, deployment_id: str, deadline: Deadline) -> str:
    config = _retrying(
        target.name,
        lambda: lambda_client().get_function_configuration(
            FunctionName=target.name, Qualifier=target.target_version
        ),
        deadline,
    )
    if config.get("State") == "Failed":
        raise CheckFailedError(
            f"{target.logical_id} version {target.target_version} is in state Failed "
            f"({config.get('StateReasonCode', 'no reason')})"
        )
    route = ((config.get("Environment") or {}).get("Variables") or {}).get("WALLET_ROUTE", "").strip()
    label = f"{target.logical_id}:{target.target_version}"
    logger.info(
        "checking the target version",
        extra={"function": target.name, "target_version": target.target_version, "route": route or None},
    )

    if route.upper().startswith("SQS") or (not route and INGEST_NAME in target.name):
        raw, error = invoke(target.name, target.target_version, batch_event(deployment_id), deadline)
        return f"{label} {judge_batch(raw, error)}"
    if route:
        raw, error = invoke(target.name, target.target_version, route_event(route, deployment_id), deadline)
        return f"{label} {judge_route(route, raw, error)}"
    return f"{label} has no route; {'; '.join(release_checks(deployment_id, deadline))}"


def release_checks(deployment_id: str, deadline: Deadline) -> list[str]:
    """The new ReadyFunction (and VersionFunction) version, for a function without a route."""
    ready_arn = os.environ.get("READY_FUNCTION_ARN", "")
    if not ready_arn:
        raise CheckFailedError("READY_FUNCTION_ARN is not set")
    raw, error = invoke(ready_arn, None, route_event("GET /ready", deployment_id), deadline)
    checks = [judge_route("GET /ready", raw, error)]
    version_arn = os.environ.get("VERSION_FUNCTION_ARN", "")
    if version_arn and os.environ.get("EXPECTED_GIT_SHA"):
        raw, error = invoke(version_arn, None, route_event("GET /version", deployment_id), deadline)
        checks.append(judge_route("GET /version", raw, error))
    return checks


# ---------------------------------------------------------------- judging the answers


def judge_route(route: str, raw: bytes, function_error: str | None) -> str:
    """What the answer to `route_event(route)` says; CheckFailedError unless it is the known one."""
    method, path = _split_route(route)
    if function_error:
        raise CheckFailedError(f"{route}: the function failed ({function_error})")
    status, body = _http_result(route, raw)
    if path == "/ready":
        return _judge_ready(status, body)
    if path == "/health":
        if status != 200:
            raise CheckFailedError(f"{route} answered {status}")
        return "/health 200"
    if path == "/version":
        expected = os.environ.get("EXPECTED_GIT_SHA", "")
        if status != 200 or (expected and body.get("git_sha") != expected):
            raise CheckFailedError(
                f"/version answered {status} git_sha {body.get('git_sha')!r}, expected {expected!r}"
            )
        return f"/version 200 {body.get('git_sha')}"
    if 400 <= status < 500 or (method == "GET" and 200 <= status < 300):
        return f"{route} answered {status} ({body.get('code') or body.get('title') or 'ok'})"
    raise CheckFailedError(f"{route} answered {status} to a request it must refuse without a 5xx")


def _judge_ready(status: int, body: dict[str, Any]) -> str:
    if status == 200 and body.get("status") in READY_STATUSES:
        return f"/ready 200 at schema {body.get('schema_revision')}"
    if body.get("reason") == SCHEMA_AHEAD:
        # Redeploying an older release (rollback): a newer one already migrated, and expand/contract
        # keeps older code working on the newer schema. Failing here would leave the rollback stuck.
        return f"/ready: schema {body.get('schema_revision')} is ahead of this release; expand/contract"
    raise CheckFailedError(
        f"/ready answered {status} {body.get('status')!r} ({body.get('reason', 'no reason')})"
    )


def judge_batch(raw: bytes, function_error: str | None) -> str:
    if function_error:
        raise CheckFailedError(f"SQS batch: the function failed ({function_error})")
    try:
        result = json.loads(raw)
        failures = result["batchItemFailures"]
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckFailedError(f"SQS batch: unparsable response ({type(exc).__name__})") from exc
    if failures:
        raise CheckFailedError(f"SQS batch: batchItemFailures {failures!r} for a message it must acknowledge")
    return "SQS probe batch acknowledged"


def _http_result(route: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    try:
        result = json.loads(raw)
        body = result.get("body") or "{}"
        parsed = json.loads(body) if isinstance(body, str) else body
        status = int(result["statusCode"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckFailedError(f"{route}: unparsable response ({type(exc).__name__})") from exc
    if not isinstance(parsed, dict):
        raise CheckFailedError(f"{route}: the body is not a JSON object")
    return status, parsed


# ---------------------------------------------------------------- invoking, with retries


def invoke(
    name: str, qualifier: str | None, event: dict[str, Any], deadline: Deadline
) -> tuple[bytes, str | None]:
    """Invoke one version synchronously: (payload, FunctionError or None)."""
    params: dict[str, Any] = {
        "FunctionName": name,
        "InvocationType": "RequestResponse",
        "Payload": json.dumps(event).encode(),
    }
    if qualifier:
        params["Qualifier"] = qualifier
    response = _retrying(name, lambda: lambda_client().invoke(**params), deadline)
    return response["Payload"].read(), response.get("FunctionError")


def _retrying(name: str, call: Callable[[], dict[str, Any]], deadline: Deadline) -> dict[str, Any]:
    """One Lambda API call; throttling and a version not ready yet are retried with backoff while
    an attempt can still finish before the hook must report."""
    last = "no attempt"
    for attempt in range(1, MAX_INVOKE_ATTEMPTS + 1):
        if not deadline.allows_invoke():
            raise CheckFailedError(
                f"{name}: out of time before an answer ({attempt - 1} attempts, last {last})"
            )
        try:
            return call()
        except (ClientError, EndpointConnectionError, ConnectionClosedError) as exc:
            last = _error_name(exc)
            if isinstance(exc, ClientError) and last not in RETRYABLE_INVOKE_ERRORS:
                raise
            logger.warning(
                "Lambda call not accepted yet; retrying", extra={"attempt": attempt, "error": last}
            )
        if attempt < MAX_INVOKE_ATTEMPTS:
            _backoff(attempt, deadline)
    raise CheckFailedError(f"{name}: still {last} after {MAX_INVOKE_ATTEMPTS} attempts")


def _backoff(attempt: int, deadline: Deadline) -> None:
    delay = min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** (attempt - 1))
    # Jitter spreads the ~22 hooks of one release apart; nothing secret depends on it.
    delay += random.uniform(0, JITTER_SECONDS)  # noqa: S311  # nosec B311
    if deadline.seconds_left() - delay < INVOKE_READ_TIMEOUT + 1:
        raise CheckFailedError(f"out of time for another attempt after {attempt} (throttled or not ready)")
    _sleep(delay)


def report(deployment_id: str, execution_id: str, status: str) -> None:
    """Tell CodeDeploy; a report that keeps failing raises so that Lambda retries the whole hook
    (CodeDeploy invokes it asynchronously), since a missing report stalls the deployment for an hour."""
    for attempt in range(1, MAX_REPORT_ATTEMPTS + 1):
        try:
            codedeploy_client().put_lifecycle_event_hook_execution_status(
                deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
            )
            return
        except ClientError as exc:
            if _error_name(exc) not in RETRYABLE_REPORT_ERRORS or attempt == MAX_REPORT_ATTEMPTS:
                logger.exception("could not report the hook status", extra={"status": status})
                raise
            logger.warning("report throttled; retrying", extra={"attempt": attempt})
            _sleep(min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** (attempt - 1)))


def _error_name(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") or type(exc).__name__
    return type(exc).__name__


# ---------------------------------------------------------------- the probe events


def _split_route(route: str) -> tuple[str, str]:
    method, _, path = route.strip().partition(" ")
    if not path.startswith("/"):
        raise CheckFailedError(f"WALLET_ROUTE {route!r} is not '<METHOD> <path>'")
    return method.upper(), path.strip()


def route_event(route: str, deployment_id: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for `route`, as the JWT authorizer would pass it
    for a non-admin test principal: path ids nobody has, no Idempotency-Key, a body that is not JSON.
    Probes (/ready, /health, /version) are public: no claims."""
    method, template = _split_route(route)
    names = re.findall(r"\{(\w+)\+?\}", template)
    path = re.sub(r"\{\w+\+?\}", PROBE_ID, template)
    now = datetime.now(UTC)
    user_agent = "wallet-pretraffic-hook"
    request_context: dict[str, Any] = {
        "accountId": "anonymous",
        "apiId": "pretraffic-hook",
        "domainName": "pretraffic-hook.local",
        "domainPrefix": "pretraffic-hook",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": user_agent,
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": f"{method} {template}",
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {template}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "user-agent": user_agent,
            "x-codedeploy-deployment-id": deployment_id,
        },
        "requestContext": request_context,
        "isBase64Encoded": False,
    }
    if names:
        event["pathParameters"] = dict.fromkeys(names, PROBE_ID)
    if path not in PROBE_PATHS:
        request_context["authorizer"] = {
            "jwt": {"claims": {"sub": PROBE_SUBJECT, "scope": "wallet.probe"}, "scopes": None}
        }
    if method not in {"GET", "HEAD", "DELETE"}:
        event["headers"]["content-type"] = "application/json"
        event["body"] = "{not json"
    return event


def batch_event(deployment_id: str) -> dict[str, Any]:
    """One SQS message without provider/event_id: the consumer acknowledges it without a record."""
    return {
        "Records": [
            {
                "messageId": f"pretraffic-{deployment_id}",
                "receiptHandle": "pretraffic-probe",
                "body": json.dumps({"probe": "codedeploy-pretraffic", "deployment_id": deployment_id}),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": str(int(time.time() * 1000)),
                    "SenderId": "pretraffic-hook",
                    "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:pretraffic-probe",
                "awsRegion": os.environ.get("AWS_REGION", "us-east-1"),
            }
        ]
    }
