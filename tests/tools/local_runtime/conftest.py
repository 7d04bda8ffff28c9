"""Fixtures for the local runtime's tests: a small fake project (template + handlers) so most tests
do not depend on the real functions, a moto SQS server on 127.0.0.1, and the HTTP server."""

from __future__ import annotations

import http.client
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.local_runtime.context import FunctionHost, module_name_for
from tools.local_runtime.runtime import write_runtime
from tools.local_runtime.server import Gateway, LocalHttpServer
from tools.local_runtime.sqs import LocalSqs, create_queues, sqs_client
from tools.local_runtime.template import Template

FAKE_TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev}
  Prefix: {Type: String, Default: fake}
Conditions:
  IsProduction: !Equals [!Ref Stage, production]
Globals:
  Function:
    Timeout: 7
    MemorySize: 256
    Environment: {Variables: {STAGE: !Ref Stage, SHARED: from-globals}}
Resources:
  FakeLayer: {Type: AWS::Serverless::LayerVersion, Properties: {ContentUri: layer/}}
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/
      Handler: echo.app.handler
      Environment:
        Variables:
          MODE: !If [IsProduction, strict, relaxed]
          QUEUE_URL: !Ref WorkQueue
          QUEUE_ARN: !GetAtt WorkQueue.Arn
          OPTIONAL: !If [IsProduction, set, !Ref AWS::NoValue]
      Events:
        ItemGet: {Type: HttpApi, Properties: {Path: "/v1/items/{item_id}", Method: GET}}
        Health: {Type: HttpApi, Properties: {Path: /health, Method: get, Auth: {Authorizer: NONE}}}
        Boom: {Type: HttpApi, Properties: {Path: /v1/boom, Method: GET}}
  OtherFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/
      Handler: other.app.handler
      Timeout: 2
      Events:
        ItemList: {Type: HttpApi, Properties: {Path: /v1/items, Method: GET}}
        ItemSpecial: {Type: HttpApi, Properties: {Path: /v1/items/special, Method: GET}}
        ItemPurge:
          Type: HttpApi
          Properties:
            Path: /v1/items/purge
            Method: POST
            Auth: {Authorizer: WalletJwt, AuthorizationScopes: [items:admin, wallet:admin]}
  WorkerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/
      Handler: worker.app.handler
      Events:
        Work:
          Type: SQS
          Properties: {Queue: !GetAtt WorkQueue.Arn, BatchSize: 5, FunctionResponseTypes: [ReportBatchItemFailures]}
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${Prefix}-work"
      VisibilityTimeout: 1
      RedrivePolicy: {deadLetterTargetArn: !GetAtt WorkDeadLetterQueue.Arn, maxReceiveCount: 2}
  WorkDeadLetterQueue: {Type: AWS::SQS::Queue, Properties: {QueueName: !Sub "${Prefix}-work-dlq"}}
  ProductionOnlyQueue: {Type: AWS::SQS::Queue, Condition: IsProduction}
"""

# Each handler records the events it saw in CALLS, so a test can prove a handler did (not) run.
HANDLERS = {
    "echo": """\
import json, fakelayer

CALLS = []


def handler(event, context):
    CALLS.append(event)
    if event["rawPath"] == "/v1/boom":
        raise RuntimeError("boom: secret detail that must not reach the client")
    body = {"function": context.function_name, "remaining_ms": context.get_remaining_time_in_millis(),
            "memory": context.memory_limit_in_mb, "arn": context.invoked_function_arn, "event": event}
    return {"statusCode": 200, "headers": {"content-type": "application/json", "x-layer": fakelayer.NAME},
            "body": json.dumps(body)}
""",
    "other": """\
CALLS = []


def handler(event, context):
    CALLS.append(event)
    return {"function": "other", "path": event["rawPath"], "timeout_left": context.get_remaining_time_in_millis()}
""",
    "worker": """\
import json

CALLS = []


def handler(event, context):
    CALLS.append(event)
    if any(record["body"] == "raise" for record in event["Records"]):
        raise RuntimeError("the whole batch fails")
    return {"batchItemFailures": [
        {"itemIdentifier": r["messageId"]} for r in event["Records"] if not json.loads(r["body"]).get("ok")
    ]}
""",
}


def write_fake_project(root: Path) -> Path:
    (root / "layer" / "fakelayer").mkdir(parents=True)
    (root / "layer" / "fakelayer" / "__init__.py").write_text('NAME = "fake-layer"\n')
    for name, source in HANDLERS.items():
        (root / "functions" / name).mkdir(parents=True)
        (root / "functions" / name / "app.py").write_text(source)
    (root / "template.yaml").write_text(FAKE_TEMPLATE)
    return root / "template.yaml"


def calls(host: FunctionHost, logical_id: str) -> list:
    """The events a fake handler saw (loaded up front: "not called" must not mean "not imported")."""
    host.handler(logical_id)
    return sys.modules[module_name_for(host.function(logical_id))].CALLS


def request(
    server: LocalHttpServer, method: str, path: str, *, token: str | None = None, body=None, headers=None
):
    """(status, lower-cased headers, raw body) of one request over a real socket."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, raw


@pytest.fixture
def fake_template_path(tmp_path: Path) -> Path:
    return write_fake_project(tmp_path)


@pytest.fixture
def fake_template(fake_template_path: Path) -> Template:
    # A unique prefix: moto keeps its state per process, across servers.
    return Template(fake_template_path, {"Prefix": f"t{uuid.uuid4().hex[:8]}"})


@pytest.fixture
def fake_host(fake_template: Template) -> FunctionHost:
    return FunctionHost(fake_template)


@pytest.fixture
def server(fake_host: FunctionHost) -> Iterator[LocalHttpServer]:
    running = LocalHttpServer(Gateway(fake_host), 0).start()
    yield running
    running.stop()


@pytest.fixture
def local_sqs() -> Iterator[LocalSqs]:
    running = LocalSqs()
    yield running
    running.stop()


@pytest.fixture
def fake_queues(fake_template: Template, local_sqs: LocalSqs) -> dict[str, str]:
    urls = create_queues(sqs_client(local_sqs.url), fake_template.queues())
    fake_template.resolver.refs.update(urls)
    return urls


@pytest.fixture
def running_state(tmp_path, fake_template, fake_queues, local_sqs, monkeypatch) -> Path:
    """What a running `run` leaves in runtime.json (this very process plays it), pointing at the
    test's moto server."""
    state = tmp_path / "state"
    queues = fake_template.queues()
    write_runtime(
        state,
        {
            "api_url": "http://127.0.0.1:3000",
            "sqs_endpoint_url": local_sqs.url,
            "queues": {
                name: {"url": url, "dlq": queues[name].dead_letter_id} for name, url in fake_queues.items()
            },
            "event_source_queues": ["WorkQueue"],
        },
    )
    monkeypatch.setenv("LOCAL_RUNTIME_DIR", str(state))
    return state
