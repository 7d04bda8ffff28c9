"""Fixtures of the integration tests: provider events delivered to the real ingestion handler, as SQS
(via Lambda) would; the probes; a service pointed at another database; an expired hold."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import reset_caches
from tests.support.lambda_runtime import (
    FakeLambdaContext,
    api_event,
    load_handler,
    parse_result,
    sample_event,
)


def event_body(event_type: str, provider: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": fields.pop("event_id", f"evt-{uuid.uuid4()}"),
        "provider": provider,
        "type": event_type,
        "occurred_at": fields.pop("occurred_at", datetime.now(UTC).isoformat().replace("+00:00", "Z")),
        **fields,
    }


def sqs_event(bodies: Iterable[dict[str, Any] | str]) -> dict[str, Any]:
    """An SQS event in Lambda's shape, built on the sample record in events/."""
    template = sample_event("sqs_deposit_settled")["Records"][0]
    records = []
    for body in bodies:
        raw = body if isinstance(body, str) else json.dumps(body)
        record = copy.deepcopy(template)
        record.update(
            messageId=str(uuid.uuid4()),
            receiptHandle=f"handle-{uuid.uuid4()}",
            body=raw,
            md5OfBody=hashlib.md5(raw.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        )
        records.append(record)
    return {"Records": records}


class Ingestion:
    """Invokes functions/ingest_events with a batch; returns the message ids SQS would retry."""

    def __init__(self) -> None:
        self.provider = f"acme-{uuid.uuid4().hex[:8]}"  # every test has its own event key space

    def body(self, event_type: str, **fields: Any) -> dict[str, Any]:
        return event_body(event_type, self.provider, **fields)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        handler = load_handler("functions/ingest_events")
        return handler(event, FakeLambdaContext(function_name="ingest_events"))

    def deliver(self, *bodies: dict[str, Any] | str) -> list[str]:
        """Deliver one batch; the failed bodies' positions are returned as message ids."""
        event = sqs_event(bodies)
        response = self.invoke(event)
        return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]

    def deliver_and_index(self, *bodies: dict[str, Any] | str) -> list[int]:
        """Like deliver, but answers with the positions of the records SQS would retry."""
        event = sqs_event(bodies)
        position = {record["messageId"]: index for index, record in enumerate(event["Records"])}
        response = self.invoke(event)
        return sorted(position[failure["itemIdentifier"]] for failure in response["batchItemFailures"])


@pytest.fixture
def ingestion(database_url: str, monkeypatch) -> Iterator[Ingestion]:
    """The test's own provider is an accepted one (WALLET_PROVIDERS), as in a configured stage."""
    from wallet_core.config import get_settings

    ingestion = Ingestion()
    monkeypatch.setenv("WALLET_PROVIDERS", f"acme-pay,{ingestion.provider}")
    monkeypatch.delenv("WALLET_BOUND_PROVIDER", raising=False)
    get_settings.cache_clear()
    yield ingestion
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def recorded(db):
    """The provider_events row of (provider, event_id): (status, reason, transaction_id, hold_id)."""

    def lookup(provider: str, event_id: str):
        return db.execute(
            "SELECT status, reason, transaction_id, hold_id FROM provider_events"
            " WHERE provider = %s AND event_id = %s",
            (provider, event_id),
        ).fetchone()

    return lookup


@pytest.fixture
def empty_database(postgres_server) -> str:
    return postgres_server.create_database("wallet_migrations")


def probe(name: str):
    """GET /<name> on a probe function (health, ready, version): public, no claims."""
    handler = load_handler(f"functions/{name}")
    return parse_result(
        handler(api_event("GET", f"/{name}", claims=None), FakeLambdaContext(function_name=name))
    )


@pytest.fixture
def pointed_at(monkeypatch):
    """Point the service at another database for one test."""

    def point(url: str) -> None:
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("DB_CONNECT_TIMEOUT_SECONDS", "2")
        reset_caches()

    yield point
    monkeypatch.undo()
    reset_caches()


@pytest.fixture
def expire(db):
    """Given step: move a hold's expiry into the past (no sleeping)."""

    def move(hold_id: str) -> None:
        db.execute("UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = %s", (hold_id,))

    return move
