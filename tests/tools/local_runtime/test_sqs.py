"""The SQS event source mapping against moto: real event records, partial batch failures (only the
successes are deleted), whole-batch retries, and the redrive to the DLQ after maxReceiveCount."""

from __future__ import annotations

import json
import sys
import time

import pytest

from tools.local_runtime import sqs
from tools.local_runtime.context import FunctionHost, module_name_for

DEADLINE_SECONDS = 20


def _worker_calls(host: FunctionHost) -> list:
    host.handler("WorkerFunction")
    return sys.modules[module_name_for(host.function("WorkerFunction"))].CALLS


def _poller(fake_host, fake_template, fake_queues, local_sqs) -> sqs.Poller:
    (poller,) = sqs.pollers_for(fake_host, fake_template, fake_queues, local_sqs.url)
    return poller


def _counts(client, url: str) -> tuple[int, int]:
    attributes = client.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_queues_are_created_with_the_templates_attributes_and_redrive(fake_queues, local_sqs, fake_template):
    client = sqs.sqs_client(local_sqs.url)
    attributes = client.get_queue_attributes(QueueUrl=fake_queues["WorkQueue"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["VisibilityTimeout"] == "1"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": fake_template.queues()["WorkDeadLetterQueue"].arn,
        "maxReceiveCount": 2,
    }
    # GetAtt Queue.Arn in the template is the ARN moto gave the queue.
    assert attributes["QueueArn"] == fake_template.queues()["WorkQueue"].arn
    # Ref Queue in an environment variable is the local queue URL once the queues exist.
    assert fake_template.function("EchoFunction").environment["QUEUE_URL"] == fake_queues["WorkQueue"]


def test_partial_batch_failure_deletes_only_the_successes(fake_host, fake_template, fake_queues, local_sqs):
    client = sqs.sqs_client(local_sqs.url)
    url = fake_queues["WorkQueue"]
    sqs.send_bodies(
        client, url, [json.dumps({"ok": True, "n": 1}), json.dumps({"ok": False}), json.dumps({"ok": True})]
    )
    poller = _poller(fake_host, fake_template, fake_queues, local_sqs)

    received = deleted = failed = 0
    deadline = time.monotonic() + DEADLINE_SECONDS
    while received < 3 and time.monotonic() < deadline:
        result = poller.poll_once()
        received, deleted, failed = (
            received + result.received,
            deleted + result.deleted,
            failed + result.failed,
        )
    assert (received, deleted, failed) == (3, 2, 1)
    assert _counts(client, url) == (0, 1)  # the failure waits out its visibility timeout

    (event, *_) = _worker_calls(fake_host)
    record = event["Records"][0]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == fake_template.queues()["WorkQueue"].arn
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])

    # After the visibility timeout only the failed message comes back.
    deadline = time.monotonic() + DEADLINE_SECONDS
    redelivered = []
    while not redelivered and time.monotonic() < deadline:
        messages = client.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages") or []
        redelivered.extend(json.loads(message["Body"]) for message in messages)
    assert redelivered == [{"ok": False}]


def test_failing_message_moves_to_the_dlq_after_max_receive_count(
    fake_host, fake_template, fake_queues, local_sqs
):
    client = sqs.sqs_client(local_sqs.url)
    sqs.send_bodies(client, fake_queues["WorkQueue"], [json.dumps({"ok": False, "id": "poison"})])
    poller = _poller(fake_host, fake_template, fake_queues, local_sqs)

    deadline = time.monotonic() + DEADLINE_SECONDS
    in_dlq = []
    while not in_dlq and time.monotonic() < deadline:
        poller.poll_once()
        in_dlq = client.receive_message(QueueUrl=fake_queues["WorkDeadLetterQueue"]).get("Messages") or []
    assert [json.loads(m["Body"]) for m in in_dlq] == [{"ok": False, "id": "poison"}]
    deliveries = [
        r["attributes"]["ApproximateReceiveCount"] for e in _worker_calls(fake_host) for r in e["Records"]
    ]
    assert deliveries == ["1", "2"]  # maxReceiveCount: 2 deliveries to the function, then the DLQ
    assert _counts(client, fake_queues["WorkQueue"]) == (0, 0)


def test_handler_exception_keeps_the_whole_batch(fake_host, fake_template, fake_queues, local_sqs):
    client = sqs.sqs_client(local_sqs.url)
    sqs.send_bodies(client, fake_queues["WorkQueue"], ["raise"])
    poller = _poller(fake_host, fake_template, fake_queues, local_sqs)
    deadline = time.monotonic() + DEADLINE_SECONDS
    result = poller.poll_once()
    while result.received == 0 and time.monotonic() < deadline:
        result = poller.poll_once()
    assert (result.received, result.deleted, result.failed) == (1, 0, 1)
    assert _counts(client, fake_queues["WorkQueue"]) == (0, 1)


def test_started_poller_processes_messages_and_stops(fake_host, fake_template, fake_queues, local_sqs):
    client = sqs.sqs_client(local_sqs.url)
    poller = _poller(fake_host, fake_template, fake_queues, local_sqs).start()
    try:
        sqs.send_bodies(client, fake_queues["WorkQueue"], [json.dumps({"ok": True})])
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not _worker_calls(fake_host) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_worker_calls(fake_host)) == 1
    finally:
        poller.stop()
    assert not poller._thread.is_alive()


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "unknown"}]}, {"a", "b"}),  # invalid id fails the batch
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        ({"batchItemFailures": "nonsense"}, {"a", "b"}),
        (None, set()),
    ],
)
def test_batch_item_failures_follow_lambdas_rules(result, expected):
    records = [{"messageId": "a"}, {"messageId": "b"}]
    assert sqs.failed_ids(result, records, report_batch_item_failures=True) == expected


def test_without_report_batch_item_failures_a_return_means_success():
    records = [{"messageId": "a"}]
    assert sqs.failed_ids({"batchItemFailures": [{"itemIdentifier": "a"}]}, records, False) == set()


def test_send_event_input_forms():
    sample = {"Records": [{"body": '{"event_id": "1"}'}, {"body": {"event_id": "2"}}]}
    assert sqs.message_bodies(sample) == ['{"event_id": "1"}', '{"event_id": "2"}']
    assert sqs.message_bodies({"event_id": "3"}) == ['{"event_id": "3"}']
