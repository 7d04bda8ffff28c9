"""A local SQS (moto's ThreadedMotoServer) holding the template's queues, and the Lambda event
source mapping for each SQS event: poll, invoke, delete what succeeded, leave the rest to come back
after the visibility timeout (and to moto's redrive to the DLQ after maxReceiveCount)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import traceback
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from tools.local_runtime.context import FunctionHost
from tools.local_runtime.template import REGION, Queue, SqsSource, Template

log = logging.getLogger("local_runtime.sqs")

# Dummy credentials: nothing the local runtime does may ever reach a real AWS account.
DUMMY_AWS_CREDENTIAL = "testing"
DUMMY_CREDENTIALS = {"aws_access_key_id": DUMMY_AWS_CREDENTIAL, "aws_secret_access_key": DUMMY_AWS_CREDENTIAL}


def sqs_client(endpoint_url: str):
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name=REGION,
        config=Config(retries={"max_attempts": 2}),
        **DUMMY_CREDENTIALS,
    )


class LocalSqs:
    """moto in this process, on 127.0.0.1 and a free port; stopped by stop()."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def start(self) -> LocalSqs:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()


def create_queues(client, queues: dict[str, Queue]) -> dict[str, str]:
    """Create every queue, then attach redrive policies (a DLQ must exist before it is named)."""
    urls = {}
    for queue in queues.values():
        urls[queue.logical_id] = client.create_queue(QueueName=queue.name, Attributes=queue.attributes)[
            "QueueUrl"
        ]
    for queue in queues.values():
        if queue.dead_letter_id:
            policy = {
                "deadLetterTargetArn": queues[queue.dead_letter_id].arn,
                "maxReceiveCount": queue.max_receive_count,
            }
            client.set_queue_attributes(
                QueueUrl=urls[queue.logical_id], Attributes={"RedrivePolicy": json.dumps(policy)}
            )
    return urls


def sqs_record(message: dict[str, Any], queue: Queue) -> dict[str, Any]:
    """One record of the event Lambda's SQS event source mapping delivers."""
    attributes = dict(message.get("Attributes") or {})
    message_attributes = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        message_attributes[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
    body = message.get("Body", "")
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody")
        or hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
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
    failures = result.get("batchItemFailures") or []
    if not isinstance(failures, list):
        return every
    ids = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in every:
            return every
        ids.add(identifier)
    return ids


@dataclass
class PollResult:
    received: int
    deleted: int
    failed: int


class Poller:
    """The event source mapping of one SQS event of one function."""

    def __init__(
        self, host: FunctionHost, source: SqsSource, queue: Queue, queue_url: str, endpoint_url: str
    ) -> None:
        self.host = host
        self.source = source
        self.queue = queue
        self.queue_url = queue_url
        self.client = sqs_client(endpoint_url)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.wait_seconds = 1  # short: shutdown must not wait on a long poll

    def poll_once(self) -> PollResult:
        response = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.source.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages") or []
        if not messages:
            return PollResult(0, 0, 0)
        records = [sqs_record(message, self.queue) for message in messages]
        try:
            result = self.host.invoke(self.source.function_id, {"Records": records})
        except Exception:
            # The whole batch comes back after the visibility timeout, as in Lambda.
            log.error(
                "%s raised on a batch of %d:\n%s",
                self.source.function_id,
                len(records),
                traceback.format_exc(),
            )
            return PollResult(len(records), 0, len(records))
        failed = failed_ids(result, records, self.source.report_batch_item_failures)
        done = [
            {"Id": str(index), "ReceiptHandle": record["receiptHandle"]}
            for index, record in enumerate(records)
            if record["messageId"] not in failed
        ]
        if done:
            self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=done)
        if failed:
            log.info(
                "%s: %d of %d records failed, they return after the visibility timeout",
                self.source.function_id,
                len(failed),
                len(records),
            )
        return PollResult(len(records), len(done), len(failed))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.error("poller %s failed:\n%s", self.source.event_id, traceback.format_exc())
                self._stop.wait(1)

    def start(self) -> Poller:
        self._thread = threading.Thread(target=self._run, name=f"sqs-{self.source.event_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.wait_seconds + 15)


def pollers_for(
    host: FunctionHost, template: Template, queue_urls: dict[str, str], endpoint_url: str
) -> list[Poller]:
    queues = template.queues()
    pollers = []
    for source in template.sqs_sources():
        queue = next((q for q in queues.values() if source.queue_arn in (q.arn, q.name, q.logical_id)), None)
        if queue is None:
            log.warning(
                "%s.%s: queue %s is not in the template; not polled",
                source.function_id,
                source.event_id,
                source.queue_arn,
            )
            continue
        if not source.enabled:
            continue
        pollers.append(Poller(host, source, queue, queue_urls[queue.logical_id], endpoint_url))
    return pollers


def message_bodies(document: Any) -> list[str]:
    """send-event input: an SQS event sample (each record's body) or one provider event."""
    if isinstance(document, dict) and isinstance(document.get("Records"), list):
        return [
            record["body"] if isinstance(record.get("body"), str) else json.dumps(record.get("body"))
            for record in document["Records"]
        ]
    return [json.dumps(document)]


def send_bodies(client, queue_url: str, bodies: list[str]) -> list[str]:
    fifo = queue_url.endswith(".fifo")
    ids = []
    for body in bodies:
        extra: dict[str, str] = {}
        if fifo:
            extra = {
                "MessageGroupId": "local",
                "MessageDeduplicationId": hashlib.sha256(body.encode()).hexdigest(),
            }
        ids.append(client.send_message(QueueUrl=queue_url, MessageBody=body, **extra)["MessageId"])
    return ids


def peek_messages(client, queue_url: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Every message on the queue, left on it: each is received once, hidden while the pass runs,
    then made visible again at once (for the next reader, or `make redrive`)."""
    seen: dict[str, dict[str, Any]] = {}
    handles: list[str] = []
    try:
        while len(seen) < limit:
            batch = (
                client.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=30,
                    WaitTimeSeconds=0,
                    MessageSystemAttributeNames=["All"],
                ).get("Messages")
                or []
            )
            if not batch:
                break
            for message in batch:
                handles.append(message["ReceiptHandle"])
                attributes = message.get("Attributes") or {}
                seen[message["MessageId"]] = {
                    "message_id": message["MessageId"],
                    "body": message.get("Body", ""),
                    "receive_count": int(attributes.get("ApproximateReceiveCount", 0)),
                    "sent_timestamp": attributes.get("SentTimestamp"),
                }
    finally:
        for handle in handles:
            client.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return list(seen.values())


def move_messages(client, from_url: str, to_url: str) -> int:
    """Send every message of one queue to another, deleting each once it is sent."""
    moved = 0
    while batch := client.receive_message(
        QueueUrl=from_url, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=0
    ).get("Messages"):
        for message in batch:
            send_bodies(client, to_url, [message["Body"]])
            client.delete_message(QueueUrl=from_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved
