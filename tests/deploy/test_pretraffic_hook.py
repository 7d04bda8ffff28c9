"""The PreTraffic hook: it looks up the deployment it was called for, exercises the version about to
get traffic with a harmless request whose answer is known, retries throttling within its time, and
tells CodeDeploy exactly once.

CodeDeploy and Lambda are botocore Stubbers (moto implements neither GetDeployment's AppSpec
content nor PutLifecycleEventHookExecutionStatus); the answers the hook judges come from the real
handlers, against the real PostgreSQL of the test session.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from tests.conftest import reset_caches
from tests.support.lambda_runtime import FakeLambdaContext, load_handler, sample_event
from tools.local_runtime.template import Template
from tools.pgserver import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT_ID = "d-EXAMPLE123"
NAME = "wallet-staging-WalletCreateFunction-AbC123dEf"
READY_NAME = "wallet-staging-ReadyFunction-AbC123dEf"
TARGET, CURRENT = "8", "7"
READY_ARN = "arn:aws:lambda:us-east-1:123456789012:function:wallet-staging-ReadyFunction:7"
VERSION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:wallet-staging-VersionFunction:7"


def appspec(*resources: tuple[str, str, str, str]) -> str:
    """The AppSpec CloudFormation gives a Lambda deployment: (logical id, name, current, target)."""
    return json.dumps(
        {
            "version": 0.0,
            "Resources": [
                {
                    logical: {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Name": name,
                            "Alias": "live",
                            "CurrentVersion": cur,
                            "TargetVersion": tgt,
                        },
                    }
                }
                for logical, name, cur, tgt in resources
            ],
        }
    )


def http_answer(status: int, body: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"statusCode": status, "body": json.dumps(body or {})}).encode()


class SleepClockContext(FakeLambdaContext):
    """The time left goes down by what the hook sleeps (and only by that): no real waiting."""

    def __init__(self, sleeps: list[float], timeout_seconds: float) -> None:
        super().__init__(function_name="CodeDeployHook_x", timeout_seconds=timeout_seconds)
        self._sleeps = sleeps

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_seconds - sum(self._sleeps)) * 1000)


class Hook:
    def __init__(self, module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
        self.module = module
        self.event = sample_event("codedeploy_pretraffic")
        self.lambda_stub = Stubber(module.lambda_client())
        self.codedeploy_stub = Stubber(module.codedeploy_client())
        self.sleeps: list[float] = []
        self.sent: list[dict[str, Any]] = []
        monkeypatch.setattr(module, "_sleep", self.sleeps.append)
        module.lambda_client().meta.events.register(
            "provide-client-params.lambda.Invoke",
            lambda params, **_: self.sent.append(json.loads(params["Payload"])),
        )

    def deployment(self, content: str | None = None, revision_type: str = "AppSpecContent") -> None:
        revision: dict[str, Any] = {"revisionType": revision_type}
        if revision_type == "AppSpecContent":
            revision["appSpecContent"] = {
                "content": content or appspec(("WalletCreateFunction", NAME, CURRENT, TARGET))
            }
        self.codedeploy_stub.add_response(
            "get_deployment",
            {"deploymentInfo": {"deploymentId": DEPLOYMENT_ID, "revision": revision}},
            {"deploymentId": DEPLOYMENT_ID},
        )

    def configuration(self, route: str | None, name: str = NAME, version: str = TARGET, **extra: Any) -> None:
        variables = {"GIT_SHA": "abc1234", **({"WALLET_ROUTE": route} if route else {})}
        self.lambda_stub.add_response(
            "get_function_configuration",
            {"FunctionName": name, "Version": version, "Environment": {"Variables": variables}, **extra},
            {"FunctionName": name, "Qualifier": version},
        )

    def answers(self, payload: bytes, name: str = NAME, version: str | None = TARGET, **extra: Any) -> None:
        expected = {"FunctionName": name, "InvocationType": "RequestResponse", "Payload": ANY}
        if version is not None:
            expected["Qualifier"] = version
        self.lambda_stub.add_response(
            "invoke",
            {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(payload), len(payload)), **extra},
            expected,
        )

    def throttled(self, code: str = "TooManyRequestsException", status: int = 429) -> None:
        self.lambda_stub.add_client_error("invoke", service_error_code=code, http_status_code=status)

    def expect_report(self, status: str) -> None:
        self.codedeploy_stub.add_response(
            "put_lifecycle_event_hook_execution_status",
            {"lifecycleEventHookExecutionId": self.event["LifecycleEventHookExecutionId"]},
            {
                "deploymentId": self.event["DeploymentId"],
                "lifecycleEventHookExecutionId": self.event["LifecycleEventHookExecutionId"],
                "status": status,
            },
        )

    def run(self, timeout_seconds: float = 60.0) -> dict[str, Any]:
        context = SleepClockContext(self.sleeps, timeout_seconds)
        with self.lambda_stub, self.codedeploy_stub:
            result = self.module.handler(self.event, context)
        # Exactly one report, and every stubbed call was made.
        self.lambda_stub.assert_no_pending_responses()
        self.codedeploy_stub.assert_no_pending_responses()
        return result


@pytest.fixture
def hook(monkeypatch) -> Iterator[Hook]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("READY_FUNCTION_ARN", READY_ARN)
    monkeypatch.delenv("EXPECTED_GIT_SHA", raising=False)
    monkeypatch.delenv("VERSION_FUNCTION_ARN", raising=False)
    module = sys.modules[load_handler("functions/pretraffic_hook").__module__]
    module.lambda_client.cache_clear()
    module.codedeploy_client.cache_clear()
    yield Hook(module, monkeypatch)
    module.lambda_client.cache_clear()
    module.codedeploy_client.cache_clear()


@pytest.fixture
def database_down(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_SECONDS", "2")
    reset_caches()
    yield
    monkeypatch.undo()
    reset_caches()


# ---------------------------------------------------------------- the version being deployed


def test_the_hook_exercises_the_target_version_of_the_function_being_deployed(hook):
    hook.deployment()
    hook.configuration("POST /v1/wallets")
    hook.answers(http_answer(400, {"code": "idempotency_key_missing"}))
    hook.expect_report("Succeeded")

    result = hook.run()

    assert result["status"] == "Succeeded"
    (event,) = hook.sent
    assert (event["version"], event["routeKey"], event["rawPath"]) == (
        "2.0",
        "POST /v1/wallets",
        "/v1/wallets",
    )
    assert event["requestContext"]["http"]["method"] == "POST"
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert "admin" not in json.dumps(claims)
    assert "idempotency-key" not in {name.lower() for name in event["headers"]}


def test_an_appspec_in_yaml_is_read_too(hook):
    hook.deployment(
        "version: 0.0\n"
        "Resources:\n"
        "  - WalletCreateFunction:\n"
        "      Type: AWS::Lambda::Function\n"
        "      Properties:\n"
        f'        Name: "{NAME}"\n'
        "        Alias: live\n"
        f'        CurrentVersion: "{CURRENT}"\n'
        f'        TargetVersion: "{TARGET}"\n'
    )
    hook.configuration("POST /v1/wallets")
    hook.answers(http_answer(400))
    hook.expect_report("Succeeded")

    assert hook.run()["status"] == "Succeeded"


def test_a_path_parameter_is_an_id_nobody_has(hook):
    hook.deployment()
    hook.configuration("GET /v1/wallets/{wallet_id}/transactions")
    hook.answers(http_answer(404, {"code": "not_found"}))
    hook.expect_report("Succeeded")

    hook.run()

    (event,) = hook.sent
    assert event["rawPath"] == f"/v1/wallets/{hook.module.PROBE_ID}/transactions"
    assert event["pathParameters"] == {"wallet_id": hook.module.PROBE_ID}
    assert event["routeKey"] == "GET /v1/wallets/{wallet_id}/transactions"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_from_the_new_version_fails_the_deployment(hook, status):
    hook.deployment()
    hook.configuration("POST /v1/transfers")
    hook.answers(http_answer(status, {"code": "internal"}))
    hook.expect_report("Failed")

    result = hook.run()

    assert result["status"] == "Failed"
    assert str(status) in result["detail"]


def test_a_2xx_to_an_empty_write_request_fails_the_deployment(hook):
    """An empty, keyless POST must be refused: accepting it means the version writes on anything."""
    hook.deployment()
    hook.configuration("POST /v1/wallets")
    hook.answers(http_answer(201, {"id": "x"}))
    hook.expect_report("Failed")

    assert hook.run()["status"] == "Failed"


def test_a_read_may_answer_200_for_the_probe_principal(hook):
    hook.deployment()
    hook.configuration("GET /v1/wallets")
    hook.answers(http_answer(200, {"items": []}))
    hook.expect_report("Succeeded")

    assert hook.run()["status"] == "Succeeded"


def test_an_unhandled_error_in_the_new_version_fails_the_deployment(hook):
    hook.deployment()
    hook.configuration("GET /v1/holds/{hold_id}")
    hook.answers(b'{"errorMessage": "boom", "errorType": "ImportError"}', FunctionError="Unhandled")
    hook.expect_report("Failed")

    result = hook.run()

    assert result["status"] == "Failed"
    assert "GET /v1/holds/{hold_id}" in result["detail"]


def test_the_ingest_function_gets_a_batch_it_must_acknowledge(hook):
    hook.deployment(appspec(("IngestEventsFunction", "wallet-staging-IngestEventsFunction-X", "3", "4")))
    hook.configuration("SQS ProviderEventsQueue", name="wallet-staging-IngestEventsFunction-X", version="4")
    hook.answers(b'{"batchItemFailures": []}', name="wallet-staging-IngestEventsFunction-X", version="4")
    hook.expect_report("Succeeded")

    assert hook.run()["status"] == "Succeeded"
    (event,) = hook.sent
    assert event["Records"][0]["eventSource"] == "aws:sqs"


def test_the_ingest_function_is_recognised_by_name_without_a_route(hook):
    name = "wallet-staging-IngestEventsFunction-X"
    hook.deployment(appspec(("IngestEventsFunction", name, "3", "4")))
    hook.configuration(None, name=name, version="4")
    hook.answers(b'{"batchItemFailures": [{"itemIdentifier": "m-1"}]}', name=name, version="4")
    hook.expect_report("Failed")

    result = hook.run()

    assert result["status"] == "Failed"
    assert "batchItemFailures" in result["detail"]


def test_a_function_without_a_route_falls_back_to_ready_of_the_new_release(hook):
    name = "wallet-staging-HoldExpirySweepFunction-X"
    hook.deployment(appspec(("HoldExpirySweepFunction", name, "3", "4")))
    hook.configuration(None, name=name, version="4")
    hook.answers(
        http_answer(200, {"status": "ready", "schema_revision": "0002"}), name=READY_ARN, version=None
    )
    hook.expect_report("Succeeded")

    result = hook.run()

    assert result["status"] == "Succeeded"
    assert hook.sent[0]["rawPath"] == "/ready"


def test_a_failed_target_version_is_not_invoked(hook):
    hook.deployment()
    hook.configuration("POST /v1/wallets", State="Failed", StateReasonCode="SubnetOutOfIPAddresses")
    hook.expect_report("Failed")

    result = hook.run()

    assert result["status"] == "Failed"
    assert "SubnetOutOfIPAddresses" in result["detail"]
    assert hook.sent == []


# ---------------------------------------------------------------- probes: /ready, /health, /version


def test_ready_of_the_new_version_at_the_schema_head_passes(hook, database_url):
    hook.deployment(appspec(("ReadyFunction", READY_NAME, CURRENT, TARGET)))
    hook.configuration("GET /ready", name=READY_NAME)
    ready = load_handler("functions/ready")
    payload = json.dumps(
        ready(hook.module.route_event("GET /ready", DEPLOYMENT_ID), FakeLambdaContext())
    ).encode()
    assert json.loads(payload)["statusCode"] == 200, payload
    hook.answers(payload, name=READY_NAME)
    hook.expect_report("Succeeded")

    assert hook.run()["status"] == "Succeeded"


def test_ready_503_because_the_database_is_down_fails(hook, database_down):
    hook.deployment(appspec(("ReadyFunction", READY_NAME, CURRENT, TARGET)))
    hook.configuration("GET /ready", name=READY_NAME)
    ready = load_handler("functions/ready")
    payload = json.dumps(
        ready(hook.module.route_event("GET /ready", DEPLOYMENT_ID), FakeLambdaContext())
    ).encode()
    assert json.loads(payload)["statusCode"] == 503, payload
    hook.answers(payload, name=READY_NAME)
    hook.expect_report("Failed")

    result = hook.run()

    assert (result["status"], "database_unreachable" in result["detail"]) == ("Failed", True)


def _ready_503(reason: str) -> bytes:
    return http_answer(
        503, {"status": "not_ready", "reason": reason, "schema_revision": "0009", "schema_head": "0002"}
    )


def test_an_older_release_on_a_newer_schema_passes_so_a_rollback_can_complete(hook):
    hook.deployment(appspec(("ReadyFunction", READY_NAME, CURRENT, TARGET)))
    hook.configuration("GET /ready", name=READY_NAME)
    hook.answers(_ready_503("schema_ahead"), name=READY_NAME)
    hook.expect_report("Succeeded")

    assert hook.run()["status"] == "Succeeded"


@pytest.mark.parametrize("reason", ["schema_behind", "schema_unknown", "missing_tables"])
def test_a_schema_the_release_cannot_run_on_fails(hook, reason):
    hook.deployment(appspec(("ReadyFunction", READY_NAME, CURRENT, TARGET)))
    hook.configuration("GET /ready", name=READY_NAME)
    hook.answers(_ready_503(reason), name=READY_NAME)
    hook.expect_report("Failed")

    result = hook.run()

    assert (result["status"], reason in result["detail"]) == ("Failed", True)


def test_version_must_report_the_deployed_git_sha(hook, monkeypatch):
    monkeypatch.setenv("EXPECTED_GIT_SHA", "abc1234")
    name = "wallet-staging-VersionFunction-X"
    hook.deployment(appspec(("VersionFunction", name, CURRENT, TARGET)))
    hook.configuration("GET /version", name=name)
    hook.answers(http_answer(200, {"git_sha": "0ld5ha"}), name=name)
    hook.expect_report("Failed")

    result = hook.run()

    assert (result["status"], "0ld5ha" in result["detail"]) == ("Failed", True)


def test_health_must_answer_200(hook):
    name = "wallet-staging-HealthFunction-X"
    hook.deployment(appspec(("HealthFunction", name, CURRENT, TARGET)))
    hook.configuration("GET /health", name=name)
    hook.answers(http_answer(200, {"status": "ok"}), name=name)
    hook.expect_report("Succeeded")

    assert hook.run()["status"] == "Succeeded"


def test_an_unparsable_answer_fails(hook):
    hook.deployment()
    hook.configuration("POST /v1/wallets")
    hook.answers(b"<html>not json</html>")
    hook.expect_report("Failed")

    result = hook.run()

    assert (result["status"], "unparsable" in result["detail"]) == ("Failed", True)


# ---------------------------------------------------------------- throttling and time


@pytest.mark.parametrize(
    ("code", "status"),
    [("TooManyRequestsException", 429), ("ResourceConflictException", 409), ("ServiceException", 500)],
)
def test_throttling_is_retried_with_a_growing_bounded_wait(hook, code, status):
    hook.deployment()
    hook.configuration("POST /v1/wallets")
    hook.throttled(code, status)
    hook.throttled(code, status)
    hook.answers(http_answer(400))
    hook.expect_report("Succeeded")

    assert hook.run()["status"] == "Succeeded"
    assert len(hook.sleeps) == 2
    assert 0 < hook.sleeps[0] <= hook.sleeps[1] + hook.module.JITTER_SECONDS
    assert max(hook.sleeps) <= hook.module.MAX_BACKOFF_SECONDS + hook.module.JITTER_SECONDS


def test_a_throttled_configuration_lookup_is_retried(hook):
    """~22 hooks read their target's configuration at once: the control plane throttles too."""
    hook.deployment()
    hook.lambda_stub.add_client_error(
        "get_function_configuration", service_error_code="TooManyRequestsException", http_status_code=429
    )
    hook.configuration("POST /v1/wallets")
    hook.answers(http_answer(400))
    hook.expect_report("Succeeded")

    assert hook.run()["status"] == "Succeeded"
    assert len(hook.sleeps) == 1


def test_throttled_on_every_attempt_fails_after_a_bounded_number_of_tries(hook):
    hook.deployment()
    hook.configuration("POST /v1/wallets")
    for _ in range(hook.module.MAX_INVOKE_ATTEMPTS):
        hook.throttled()
    hook.expect_report("Failed")

    result = hook.run(timeout_seconds=900)

    assert result["status"] == "Failed"
    assert "TooManyRequestsException" in result["detail"]
    assert len(hook.sleeps) == hook.module.MAX_INVOKE_ATTEMPTS - 1


def test_no_retry_starts_that_could_not_finish_before_the_hook_must_report(hook):
    """With too little time left for another invoke, the hook reports Failed instead of timing out
    silently (CodeDeploy would wait an hour for an answer that never comes)."""
    hook.deployment()
    hook.configuration("POST /v1/wallets")
    hook.throttled()
    hook.expect_report("Failed")

    first_attempt_only = hook.module.INVOKE_READ_TIMEOUT + 1 + hook.module.REPORT_RESERVE_SECONDS + 0.2
    result = hook.run(timeout_seconds=first_attempt_only)

    assert result["status"] == "Failed"
    assert "time" in result["detail"]
    assert hook.sleeps == []


def test_a_non_retryable_invoke_error_fails_at_once(hook):
    hook.deployment()
    hook.configuration("POST /v1/wallets")
    hook.lambda_stub.add_client_error(
        "invoke", service_error_code="AccessDeniedException", http_status_code=403
    )
    hook.expect_report("Failed")

    result = hook.run()

    assert result == {"status": "Failed", "detail": "check raised AccessDeniedException"}
    assert hook.sleeps == []


# ---------------------------------------------------------------- every path reports


def test_a_deployment_that_cannot_be_read_is_reported_failed(hook):
    hook.codedeploy_stub.add_client_error(
        "get_deployment", service_error_code="DeploymentDoesNotExistException", http_status_code=400
    )
    hook.expect_report("Failed")

    assert hook.run()["status"] == "Failed"


@pytest.mark.parametrize(
    "content",
    [
        "not: json",
        "Resources:\n  - WalletCreateFunction:\n      Properties:\n        Name: x\n",
        json.dumps({"version": 0.0, "Resources": []}),
        json.dumps({"Resources": [{"Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Name": "x"}}}]}),
    ],
)
def test_an_appspec_without_a_target_version_is_reported_failed(hook, content):
    hook.deployment(content)
    hook.expect_report("Failed")

    result = hook.run()

    assert (result["status"], "AppSpec" in result["detail"]) == ("Failed", True)


def test_a_revision_that_is_not_appspec_content_is_reported_failed(hook):
    hook.deployment(revision_type="S3")
    hook.expect_report("Failed")

    assert hook.run()["status"] == "Failed"


def test_a_throttled_report_is_retried(hook):
    hook.deployment()
    hook.configuration("POST /v1/wallets")
    hook.answers(http_answer(400))
    hook.codedeploy_stub.add_client_error(
        "put_lifecycle_event_hook_execution_status",
        service_error_code="ThrottlingException",
        http_status_code=400,
    )
    hook.expect_report("Succeeded")

    assert hook.run()["status"] == "Succeeded"
    assert len(hook.sleeps) == 1


def test_a_report_that_keeps_failing_raises_so_lambda_retries_the_hook(hook):
    hook.deployment()
    hook.configuration("POST /v1/wallets")
    hook.answers(http_answer(400))
    for _ in range(hook.module.MAX_REPORT_ATTEMPTS):
        hook.codedeploy_stub.add_client_error(
            "put_lifecycle_event_hook_execution_status",
            service_error_code="ThrottlingException",
            http_status_code=400,
        )

    with pytest.raises(ClientError):
        hook.run()


# ---------------------------------------------------------------- the real functions answer as judged


def _traffic_functions() -> list[tuple[str, str, str]]:
    """(logical id, module path, route) of every API function, read from the template expanded as
    CloudFormation would (the route table); the hook gets the route from WALLET_ROUTE."""
    template = Template(ROOT / "template.yaml")
    found = []
    for route in template.http_routes():
        function = template.function(route.function_id)
        module = function.module_path.relative_to(ROOT).with_suffix("")
        found.append((route.function_id, str(module), route.route_key))
    return sorted(found)


def _row_counts(db: psycopg.Connection) -> dict[str, int]:
    tables = [row[0] for row in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    return {table: db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}


@pytest.mark.parametrize(("logical", "code_dir", "route"), _traffic_functions(), ids=str)
def test_every_api_function_answers_the_probe_as_the_hook_expects_and_writes_nothing(
    hook, database_url, db, logical, code_dir, route
):
    before = _row_counts(db)
    handler = load_handler(str(Path(code_dir).parent), f"{Path(code_dir).name}.handler")

    answer = handler(hook.module.route_event(route, DEPLOYMENT_ID), FakeLambdaContext(function_name=logical))

    verdict = hook.module.judge_route(route, json.dumps(answer).encode(), None)
    assert verdict  # raises CheckFailedError otherwise
    assert _row_counts(db) == before


def test_the_ingest_function_acknowledges_the_probe_batch_and_writes_nothing(hook, database_url, db):
    before = _row_counts(db)
    handler = load_handler("functions/ingest_events")

    answer = handler(hook.module.batch_event(DEPLOYMENT_ID), FakeLambdaContext(function_name="IngestEvents"))

    assert hook.module.judge_batch(json.dumps(answer).encode(), None)
    assert _row_counts(db) == before
