"""The ingestion queue end to end on moto's SQS with a redrive policy (maxReceiveCount 3): this test
plays Lambda's event source mapping (receive, invoke, delete what succeeded, let failures become
visible again) in a bounded loop."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import boto3
import pytest
from moto import mock_aws

from tests.conftest import ADMIN, BOB

MAX_RECEIVE_COUNT = 3


@pytest.fixture
def queues(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq_url = sqs.create_queue(QueueName="wallet-test-ingestion-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        url = sqs.create_queue(
            QueueName="wallet-test-ingestion",
            Attributes={
                "VisibilityTimeout": "30",
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
                ),
            },
        )["QueueUrl"]
        yield sqs, url, dlq_url


def _record(message: dict, queue_arn: str) -> dict:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


class EventSourceMapping:
    def __init__(self, sqs, url: str, ingestion) -> None:
        self.sqs, self.url, self.ingestion = sqs, url, ingestion
        self.arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.attempts: Counter[str] = Counter()

    def poll(self) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return 0
        response = self.ingestion.invoke({"Records": [_record(message, self.arn) for message in messages]})
        failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        for message in messages:
            self.attempts[message["MessageId"]] += 1
            if message["MessageId"] in failed:
                # Instead of waiting out the visibility timeout: visible again at once.
                self.sqs.change_message_visibility(
                    QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)


def _send(sqs, url: str, body: dict) -> str:
    return sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))["MessageId"]


def test_a_record_that_keeps_failing_ends_in_the_dlq_and_a_late_wallet_succeeds_on_redelivery(
    api, queues, ingestion, recorded
):
    sqs, url, dlq_url = queues
    ref = f"late-{uuid.uuid4()}"
    early = api.create_wallet(BOB)
    applies_now = ingestion.body("deposit.settled", wallet_id=early["id"], amount=10, currency="USD")
    applies_later = ingestion.body("deposit.settled", external_ref=ref, amount=300, currency="USD")
    never_applies = ingestion.body("withdrawal.settled", hold_id=str(uuid.uuid4()))
    ids = {
        name: _send(sqs, url, body)
        for name, body in [("now", applies_now), ("later", applies_later), ("never", never_applies)]
    }
    mapping = EventSourceMapping(sqs, url, ingestion)

    assert mapping.poll() == 3
    # the record it refers to shows up
    late_wallet = api.create_wallet(ADMIN, owner_id="bob", external_ref=ref)
    for _ in range(10):  # bounded: at most maxReceiveCount + a few polls are ever needed
        if mapping.poll() == 0:
            break

    assert api.get_wallet(early["id"])["balance"] == 10
    assert api.get_wallet(late_wallet["id"])["balance"] == 300
    assert mapping.attempts[ids["now"]] == 1
    assert mapping.attempts[ids["later"]] == 2
    assert mapping.attempts[ids["never"]] == MAX_RECEIVE_COUNT
    dead = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    )
    assert [json.loads(message["Body"]) for message in dead] == [never_applies]
    assert recorded(ingestion.provider, never_applies["event_id"]) is None
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []
