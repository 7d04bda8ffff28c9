"""A local SQS (moto's ThreadedMotoServer) holding the template's queues, and the Lambda event
source mapping for each SQS event: poll, invoke, delete what succeeded, leave the rest to come back
after the visibility timeout (moto moves it to the DLQ after maxReceiveCount, as SQS does)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from typing import Any

import boto3

from tools.local_runtime.context import FunctionHost
from tools.local_runtime.template import REGION, Queue, SqsSource, Template

log = logging.getLogger("local_runtime.sqs")

# Dummy credentials: nothing the local runtime does may ever reach a real AWS account.
DUMMY_AWS_CREDENTIAL = "testing"


def sqs_client(endpoint_url: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=DUMMY_AWS_CREDENTIAL,
        aws_secret_access_key=DUMMY_AWS_CREDENTIAL,
    )


class LocalSqs:
    """moto in this process, on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        self.url = "http://{}:{}".format(*self._server.get_host_and_port())
        self.stop = self._server.stop


def create_queues(client: Any, queues: dict[str, Queue]) -> dict[str, str]:
    """Every queue, dead-letter queues first: a redrive policy names an existing queue."""
    urls = {}
    for queue in sorted(queues.values(), key=lambda queue: queue.dead_letter_id is not None):
        attributes = dict(queue.attributes)
        if queue.dead_letter_id:
            target = queues[queue.dead_letter_id].arn
            policy = {"deadLetterTargetArn": target, "maxReceiveCount": queue.max_receive_count}
            attributes["RedrivePolicy"] = json.dumps(policy)
        urls[queue.logical_id] = client.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
    return urls


def sqs_record(message: dict[str, Any], queue: Queue) -> dict[str, Any]:
    """One record of the event Lambda's SQS event source mapping delivers."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes") or {},
        "messageAttributes": {
            name: {key[0].lower() + key[1:]: value for key, value in attribute.items()}
            for name, attribute in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": REGION,
    }


def failed_ids(result: Any, records: list[dict[str, Any]], report_batch_item_failures: bool) -> set[str]:
    """Which message ids must stay on the queue. Mirrors Lambda: without ReportBatchItemFailures a
    normal return means all succeeded; with it, a malformed or unknown itemIdentifier fails the
    whole batch."""
    every = {record["messageId"] for record in records}
    if not report_batch_item_failures or not isinstance(result, dict):
        return set()
    try:
        ids = {failure["itemIdentifier"] for failure in result.get("batchItemFailures") or []}
    except (TypeError, KeyError):
        return every
    return ids if ids <= every else every


class Poller:
    """The event source mapping of one SQS event of one function, on its own thread."""

    wait_seconds = 1  # short: shutdown must not wait on a long poll

    def __init__(
        self, host: FunctionHost, source: SqsSource, queue: Queue, queue_url: str, endpoint: str
    ) -> None:
        self.host, self.source, self.queue, self.queue_url = host, source, queue, queue_url
        self.client = sqs_client(endpoint)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sqs-{source.function_id}", daemon=True)

    def poll_once(self) -> tuple[int, int]:
        """(records received, records left on the queue to come back)."""
        messages = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.source.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0, 0
        records = [sqs_record(message, self.queue) for message in messages]
        try:
            result = self.host.invoke(self.source.function_id, {"Records": records})
            failed = failed_ids(result, records, self.source.report_batch_item_failures)
        except Exception:  # the whole batch comes back after the visibility timeout, as in Lambda
            log.exception("%s raised on a batch of %d", self.source.function_id, len(records))
            return len(records), len(records)
        done = [r for r in records if r["messageId"] not in failed]
        if done:
            entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)]
            self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        return len(records), len(failed)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("poller of %s failed", self.source.function_id)
                self._stop.wait(1)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.wait_seconds + 15)


def pollers_for(
    host: FunctionHost, template: Template, queue_urls: dict[str, str], endpoint: str
) -> list[Poller]:
    by_arn = {queue.arn: queue for queue in template.queues().values()}
    return [
        Poller(host, source, (queue := by_arn[source.queue_arn]), queue_urls[queue.logical_id], endpoint)
        for source in template.sqs_sources()
    ]


def message_bodies(document: Any) -> list[str]:
    """send-event input: an SQS event sample (each record's body) or one provider event."""
    if isinstance(document, dict) and isinstance(document.get("Records"), list):
        return [
            r["body"] if isinstance(r["body"], str) else json.dumps(r["body"]) for r in document["Records"]
        ]
    return [json.dumps(document)]


def send_bodies(client: Any, queue_url: str, bodies: list[str]) -> list[str]:
    return [client.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"] for body in bodies]


def receive_all(client: Any, queue_url: str, *, keep: bool) -> list[dict[str, Any]]:
    """Every message on the queue, each received once (hidden for 30 s while the pass runs); with
    `keep`, made visible again at once afterwards (for the next reader, or `make redrive`)."""
    received: list[dict[str, Any]] = []
    while batch := client.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30, MessageSystemAttributeNames=["All"]
    ).get("Messages"):
        received += batch
    for message in received if keep else ():
        client.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return received


def peek_messages(client: Any, queue_url: str) -> list[dict[str, Any]]:
    return [
        {
            "message_id": message["MessageId"],
            "body": message["Body"],
            "receive_count": int(message["Attributes"]["ApproximateReceiveCount"]),
            "sent_timestamp": message["Attributes"]["SentTimestamp"],
        }
        for message in receive_all(client, queue_url, keep=True)
    ]


def move_messages(client: Any, from_url: str, to_url: str) -> int:
    """Send every message of one queue to another, deleting each once it is sent."""
    messages = receive_all(client, from_url, keep=False)
    for message in messages:
        send_bodies(client, to_url, [message["Body"]])
        client.delete_message(QueueUrl=from_url, ReceiptHandle=message["ReceiptHandle"])
    return len(messages)
