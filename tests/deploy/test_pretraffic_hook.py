"""The PreTraffic hook: it asks the NEW version of /ready (and optionally /version) and tells
CodeDeploy exactly once. Lambda and CodeDeploy are botocore Stubbers (moto has no
put_lifecycle_event_hook_execution_status); the /ready answers come from the real ready handler."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from tests.conftest import reset_caches
from tests.support.lambda_runtime import FakeLambdaContext, load_handler, sample_event
from tools.pgserver import free_port

READY_ARN = "arn:aws:lambda:us-east-1:123456789012:function:wallet-staging-ReadyFunction:7"
VERSION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:wallet-staging-VersionFunction:7"


class Hook:
    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.event = sample_event("codedeploy_pretraffic")
        self.lambda_stub = Stubber(module.lambda_client())
        self.codedeploy_stub = Stubber(module.codedeploy_client())

    def probe_answers(self, payload: bytes, function_arn: str = READY_ARN, **extra: Any) -> None:
        self.lambda_stub.add_response(
            "invoke",
            {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(payload), len(payload)), **extra},
            {"FunctionName": function_arn, "InvocationType": "RequestResponse", "Payload": ANY},
        )

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

    def run(self) -> dict[str, Any]:
        with self.lambda_stub, self.codedeploy_stub:
            result = self.module.handler(self.event, FakeLambdaContext(function_name="CodeDeployHook_x"))
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
    yield Hook(module)
    module.lambda_client.cache_clear()
    module.codedeploy_client.cache_clear()


def real_ready_answer(module: ModuleType) -> bytes:
    """What the ready function answers to the very event the hook sends."""
    ready = load_handler("functions/ready")
    event = module.probe_event("/ready", "d-EXAMPLE123")
    return json.dumps(ready(event, FakeLambdaContext(function_name="ready"))).encode()


@pytest.fixture
def database_down(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_SECONDS", "2")
    reset_caches()
    yield
    monkeypatch.undo()
    reset_caches()


def test_a_ready_new_version_is_reported_succeeded(hook, database_url):
    payload = real_ready_answer(hook.module)
    assert json.loads(payload)["statusCode"] == 200, payload
    hook.probe_answers(payload, ExecutedVersion="7")
    hook.expect_report("Succeeded")

    result = hook.run()

    assert result["status"] == "Succeeded"


def test_the_hook_sends_the_new_version_an_http_api_get_ready(hook):
    sent: list[dict[str, Any]] = []
    hook.module.lambda_client().meta.events.register(
        "provide-client-params.lambda.Invoke", lambda params, **_: sent.append(json.loads(params["Payload"]))
    )
    hook.probe_answers(b'{"statusCode": 200, "body": "{\\"status\\": \\"ready\\"}"}')
    hook.expect_report("Succeeded")

    hook.run()

    (event,) = sent
    assert (event["version"], event["rawPath"], event["requestContext"]["http"]["method"]) == (
        "2.0",
        "/ready",
        "GET",
    )
    assert event["routeKey"] == "GET /ready"


def test_a_503_from_ready_is_reported_failed(hook, database_down):
    payload = real_ready_answer(hook.module)
    assert json.loads(payload)["statusCode"] == 503, payload
    hook.probe_answers(payload)
    hook.expect_report("Failed")

    result = hook.run()

    assert result["status"] == "Failed"
    assert "database_unreachable" in result["detail"]


def _ready_503(reason: str) -> bytes:
    body = {"status": "not_ready", "reason": reason, "schema_revision": "0009", "schema_head": "0002"}
    return json.dumps({"statusCode": 503, "body": json.dumps(body)}).encode()


def test_an_older_release_on_a_newer_schema_passes_so_a_manual_rollback_can_complete(hook):
    hook.probe_answers(_ready_503("schema_ahead"))
    hook.expect_report("Succeeded")

    result = hook.run()

    assert result["status"] == "Succeeded"


@pytest.mark.parametrize("reason", ["schema_behind", "schema_unknown", "missing_tables"])
def test_a_schema_the_release_cannot_run_on_is_reported_failed(hook, reason):
    hook.probe_answers(_ready_503(reason))
    hook.expect_report("Failed")

    result = hook.run()

    assert (result["status"], reason in result["detail"]) == ("Failed", True)


def test_a_function_error_is_reported_failed(hook):
    hook.probe_answers(b'{"errorMessage": "boom", "errorType": "RuntimeError"}', FunctionError="Unhandled")
    hook.expect_report("Failed")

    assert hook.run()["status"] == "Failed"


def test_a_200_that_is_not_ready_is_reported_failed(hook):
    hook.probe_answers(b'{"statusCode": 200, "body": "{\\"status\\": \\"starting\\"}"}')
    hook.expect_report("Failed")

    assert hook.run()["status"] == "Failed"


def test_an_unparsable_answer_is_reported_failed(hook):
    hook.probe_answers(b"<html>not json</html>")
    hook.expect_report("Failed")

    result = hook.run()

    assert (result["status"], "unparsable" in result["detail"]) == ("Failed", True)


def test_an_invoke_that_raises_is_still_reported_once_as_failed(hook):
    hook.lambda_stub.add_client_error(
        "invoke", service_error_code="ResourceNotFoundException", http_status_code=404
    )
    hook.expect_report("Failed")

    result = hook.run()

    assert result == {"status": "Failed", "detail": "check raised ResourceNotFoundException"}


def test_a_missing_ready_function_arn_is_reported_failed(hook, monkeypatch):
    monkeypatch.delenv("READY_FUNCTION_ARN")
    hook.expect_report("Failed")

    assert hook.run()["status"] == "Failed"


def test_the_expected_git_sha_is_checked_when_configured(hook, monkeypatch):
    monkeypatch.setenv("EXPECTED_GIT_SHA", "abc1234")
    monkeypatch.setenv("VERSION_FUNCTION_ARN", VERSION_ARN)
    hook.probe_answers(b'{"statusCode": 200, "body": "{\\"status\\": \\"ready\\"}"}')
    hook.probe_answers(b'{"statusCode": 200, "body": "{\\"git_sha\\": \\"abc1234\\"}"}', VERSION_ARN)
    hook.expect_report("Succeeded")

    assert hook.run()["status"] == "Succeeded"


def test_a_new_version_reporting_another_git_sha_is_reported_failed(hook, monkeypatch):
    monkeypatch.setenv("EXPECTED_GIT_SHA", "abc1234")
    monkeypatch.setenv("VERSION_FUNCTION_ARN", VERSION_ARN)
    hook.probe_answers(b'{"statusCode": 200, "body": "{\\"status\\": \\"ready\\"}"}')
    hook.probe_answers(b'{"statusCode": 200, "body": "{\\"git_sha\\": \\"0ld5ha\\"}"}', VERSION_ARN)
    hook.expect_report("Failed")

    result = hook.run()

    assert result["status"] == "Failed"
    assert "0ld5ha" in result["detail"]


def test_a_failed_report_raises_so_the_invocation_is_retried(hook):
    hook.probe_answers(b'{"statusCode": 200, "body": "{\\"status\\": \\"ready\\"}"}')
    hook.codedeploy_stub.add_client_error(
        "put_lifecycle_event_hook_execution_status",
        service_error_code="ThrottlingException",
        http_status_code=400,
    )

    with pytest.raises(ClientError):
        hook.run()
