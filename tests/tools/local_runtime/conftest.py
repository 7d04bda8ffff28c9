"""Fixtures for the local runtime's tests: a small fake project (template + handlers) so most tests
do not depend on the real functions, and a moto SQS server on 127.0.0.1."""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.local_runtime.context import FunctionHost
from tools.local_runtime.sqs import LocalSqs, create_queues, sqs_client
from tools.local_runtime.template import Template

FAKE_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
  Prefix:
    Type: String
    Default: fake
Conditions:
  IsProduction: !Equals [!Ref Stage, production]
Globals:
  Function:
    Timeout: 7
    MemorySize: 256
    Layers:
      - !Ref FakeLayer
    Environment:
      Variables:
        STAGE: !Ref Stage
        SHARED: from-globals
Resources:
  FakeLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/echo/
      Handler: app.handler
      Environment:
        Variables:
          MODE: !If [IsProduction, strict, relaxed]
          QUEUE_URL: !Ref WorkQueue
          QUEUE_ARN: !GetAtt WorkQueue.Arn
          OPTIONAL: !If [IsProduction, set, !Ref AWS::NoValue]
      Events:
        ItemGet:
          Type: HttpApi
          Properties:
            Path: /v1/items/{item_id}
            Method: GET
        Files:
          Type: HttpApi
          Properties:
            Path: /v1/files/{proxy+}
            Method: ANY
        Health:
          Type: HttpApi
          Properties:
            Path: /health
            Method: get
        Boom:
          Type: HttpApi
          Properties:
            Path: /v1/boom
            Method: GET
  OtherFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/other/
      Handler: app.handler
      Timeout: 2
      Events:
        ItemList:
          Type: HttpApi
          Properties:
            Path: /v1/items
            Method: GET
        ItemSpecial:
          Type: HttpApi
          Properties:
            Path: /v1/items/special
            Method: GET
        ItemPurge:
          Type: HttpApi
          Properties:
            Path: /v1/items/purge
            Method: POST
            Auth:
              Authorizer: WalletJwt
              AuthorizationScopes: [items:admin, wallet:admin]
  WorkerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/worker/
      Handler: app.handler
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt WorkQueue.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${Prefix}-work"
      VisibilityTimeout: 1
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt WorkDeadLetterQueue.Arn
        maxReceiveCount: 2
  WorkDeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${Prefix}-work-dlq"
      MessageRetentionPeriod: 1209600
  ProductionOnlyQueue:
    Type: AWS::SQS::Queue
    Condition: IsProduction
"""

# Each handler records the events it saw in CALLS, so a test can prove a handler did (not) run.
ECHO_HANDLER = """\
import fakelayer

CALLS = []


def handler(event, context):
    CALLS.append(event)
    if event["rawPath"] == "/v1/boom":
        raise RuntimeError("boom: secret detail that must not reach the client")
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json", "x-layer": fakelayer.NAME},
        "body": __import__("json").dumps({
            "function": context.function_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "memory": context.memory_limit_in_mb,
            "arn": context.invoked_function_arn,
            "request_id": context.aws_request_id,
            "event": event,
        }),
    }
"""

OTHER_HANDLER = """\
CALLS = []


def handler(event, context):
    CALLS.append(event)
    return {"function": "other", "path": event["rawPath"], "timeout_left": context.get_remaining_time_in_millis()}
"""

WORKER_HANDLER = """\
import json

CALLS = []


def handler(event, context):
    CALLS.append(event)
    failures = []
    for record in event["Records"]:
        if record["body"] == "raise":
            raise RuntimeError("the whole batch fails")
        if not json.loads(record["body"]).get("ok"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
"""


def write_fake_project(root: Path) -> Path:
    (root / "layer" / "fakelayer").mkdir(parents=True)
    (root / "layer" / "fakelayer" / "__init__.py").write_text('NAME = "fake-layer"\n')
    for name, source in (("echo", ECHO_HANDLER), ("other", OTHER_HANDLER), ("worker", WORKER_HANDLER)):
        (root / "functions" / name).mkdir(parents=True)
        (root / "functions" / name / "app.py").write_text(textwrap.dedent(source))
    template = root / "template.yaml"
    template.write_text(FAKE_TEMPLATE)
    return template


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
def local_sqs() -> Iterator[LocalSqs]:
    server = LocalSqs().start()
    yield server
    server.stop()


@pytest.fixture
def fake_queues(fake_template: Template, local_sqs: LocalSqs) -> dict[str, str]:
    urls = create_queues(sqs_client(local_sqs.url), fake_template.queues())
    fake_template.resolver.refs.update(urls)
    return urls


@pytest.fixture
def restore_environ() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
