"""The SQS event source mapping against moto: real event records, partial batch failures (only the
successes are deleted), whole-batch retries, and the redrive to the DLQ after maxReceiveCount."""

from __future__ import annotations

import json
import time

import pytest

from tests.tools.local_runtime.conftest import calls
from tools.local_runtime import sqs

DEADLINE_SECONDS = 20


@pytest.fixture
def poller(fake_host, fake_template, fake_queues, local_sqs) -> sqs.Poller:
    (poller,) = sqs.pollers_for(fake_host, fake_template, fake_queues, local_sqs.url)
    return poller


def _counts(client, url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attributes[names[0]]), int(attributes[names[1]])


def _poll_until(poller: sqs.Poller, done) -> list[tuple[int, int]]:
    results: list[tuple[int, int]] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not done(results) and time.monotonic() < deadline:
        results.append(poller.poll_once())
    return results


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
    # GetAtt Queue.Arn in the template is the ARN moto gave the queue; Ref Queue is its local URL.
    assert attributes["QueueArn"] == fake_template.queues()["WorkQueue"].arn
    assert fake_template.function("EchoFunction").environment["QUEUE_URL"] == fake_queues["WorkQueue"]


def test_partial_batch_failure_deletes_only_the_successes(
    poller, fake_host, fake_template, fake_queues, local_sqs
):
    client = sqs.sqs_client(local_sqs.url)
    url = fake_queues["WorkQueue"]
    sqs.send_bodies(
        client, url, [json.dumps({"ok": True}), json.dumps({"ok": False}), json.dumps({"ok": True})]
    )

    results = _poll_until(poller, lambda results: sum(r[0] for r in results) >= 3)
    assert (sum(r[0] for r in results), sum(r[1] for r in results)) == (3, 1)
    assert _counts(client, url) == (0, 1)  # the failure waits out its visibility timeout
    record = calls(fake_host, "WorkerFunction")[0]["Records"][0]
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
    assert (record["eventSource"], record["awsRegion"]) == ("aws:sqs", "us-east-1")
    assert record["eventSourceARN"] == fake_template.queues()["WorkQueue"].arn
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])

    # After the visibility timeout only the failed message comes back, twice (maxReceiveCount: 2),
    # then it is in the DLQ.
    in_dlq: list = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not in_dlq and time.monotonic() < deadline:
        poller.poll_once()
        in_dlq = client.receive_message(QueueUrl=fake_queues["WorkDeadLetterQueue"]).get("Messages") or []
    assert [json.loads(m["Body"]) for m in in_dlq] == [{"ok": False}]
    deliveries = [
        (r["body"], r["attributes"]["ApproximateReceiveCount"])
        for e in calls(fake_host, "WorkerFunction")
        for r in e["Records"]
        if r["body"] == '{"ok": false}'
    ]
    assert deliveries == [('{"ok": false}', "1"), ('{"ok": false}', "2")]
    assert _counts(client, url) == (0, 0)


def test_handler_exception_keeps_the_whole_batch(poller, fake_queues, local_sqs):
    client = sqs.sqs_client(local_sqs.url)
    sqs.send_bodies(client, fake_queues["WorkQueue"], ["raise"])
    assert _poll_until(poller, lambda results: results and results[-1][0])[-1] == (1, 1)
    assert _counts(client, fake_queues["WorkQueue"]) == (0, 1)


def test_started_poller_processes_messages_and_stops(poller, fake_host, fake_queues, local_sqs):
    poller.start()
    try:
        sqs.send_bodies(sqs.sqs_client(local_sqs.url), fake_queues["WorkQueue"], [json.dumps({"ok": True})])
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not calls(fake_host, "WorkerFunction") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(calls(fake_host, "WorkerFunction")) == 1
    finally:
        poller.stop()
    assert not poller._thread.is_alive()


@pytest.mark.parametrize(
    ("result", "report", "expected"),
    [
        ({"batchItemFailures": []}, True, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, True, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "unknown"}]}, True, {"a", "b"}),  # fails the batch
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, True, {"a", "b"}),
        ({"batchItemFailures": [{}]}, True, {"a", "b"}),
        ({"batchItemFailures": "nonsense"}, True, {"a", "b"}),
        (None, True, set()),
        ({"batchItemFailures": [{"itemIdentifier": "a"}]}, False, set()),  # without ReportBatchItemFailures
    ],
)
def test_batch_item_failures_follow_lambdas_rules(result, report, expected):
    assert sqs.failed_ids(result, [{"messageId": "a"}, {"messageId": "b"}], report) == expected


def test_send_event_input_forms():
    sample = {"Records": [{"body": '{"event_id": "1"}'}, {"body": {"event_id": "2"}}]}
    assert sqs.message_bodies(sample) == ['{"event_id": "1"}', '{"event_id": "2"}']
    assert sqs.message_bodies({"event_id": "3"}) == ['{"event_id": "3"}']
