"""Custom::SchemaMigration: the migration function answers CloudFormation on every path, through
the real handler, against a real PostgreSQL, with a local HTTP server playing the pre-signed S3 URL.

Every test that migrates gets its own throwaway database: the shared test database stays at head.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from alembic.script import ScriptDirectory

import custom_resource
import runner
from tests.conftest import _libpq, reset_caches
from tests.support.lambda_runtime import FakeLambdaContext, load_handler, sample_event
from tools.pgserver import free_port

HEAD = runner.head_revision()
STABLE_ID = "schema-migration-wallet-staging-SchemaMigration"


@dataclass
class ReceivedResponse:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)


@dataclass
class ResponseBucket:
    """What CloudFormation's S3 bucket received; `statuses` scripts the answers (then 200s)."""

    url: str = ""
    received: list[ReceivedResponse] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    @property
    def only(self) -> dict[str, Any]:
        assert len(self.received) == 1, [r.body for r in self.received]
        return self.received[0].body


@pytest.fixture
def bucket() -> Iterator[ResponseBucket]:
    state = ResponseBucket()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(ReceivedResponse("PUT", self.path, dict(self.headers.items()), raw))
            self.send_response(state.statuses.pop(0) if state.statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            state.arrived.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = (
        f"http://127.0.0.1:{server.server_address[1]}/cfn-response/SchemaMigration?X-Amz-Signature=abc"
    )
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def migration_db(postgres_server, monkeypatch) -> Iterator[str]:
    """An empty throwaway database that the migration function is pointed at for one test."""
    url = postgres_server.create_database("wallet_cfn")
    monkeypatch.setenv("DATABASE_URL", url)
    reset_caches()
    yield url
    monkeypatch.undo()
    reset_caches()


@pytest.fixture
def unreachable_db(monkeypatch) -> Iterator[str]:
    url = f"postgresql+psycopg://migrator:hunter2-not-for-logs@127.0.0.1:{free_port()}/wallet"
    monkeypatch.setenv("DATABASE_URL", url)
    reset_caches()
    yield url
    monkeypatch.undo()
    reset_caches()


def cfn_event(name: str, bucket: ResponseBucket, schema_head: str | None = HEAD) -> dict[str, Any]:
    event = sample_event(name)
    event["ResponseURL"] = bucket.url
    if schema_head is not None:
        event["ResourceProperties"]["SchemaHead"] = schema_head
    return event


def invoke(event: dict[str, Any], timeout_seconds: float = 300.0) -> dict[str, Any]:
    handler = load_handler("migrations")
    return handler(event, FakeLambdaContext(function_name="migrate", timeout_seconds=timeout_seconds))


def revision(url: str) -> str | None:
    return runner.current_revision(url)


def tables(url: str) -> set[str]:
    with psycopg.connect(_libpq(url)) as connection:
        rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in rows}


def previous_revision() -> str:
    scripts = ScriptDirectory.from_config(runner.alembic_config())
    down = scripts.get_revision(HEAD).down_revision
    assert isinstance(down, str), "these tests need a head with exactly one parent"
    return down


# Create ----------------------------------------------------------------------------------------


def test_create_on_an_empty_database_migrates_to_head_and_answers_success(bucket, migration_db):
    event = cfn_event("cfn_schema_migration_create", bucket)

    invoke(event)

    answer = bucket.only
    assert answer["Status"] == "SUCCESS"
    assert answer["Data"] == {"Revision": HEAD, "Head": HEAD}
    assert answer["PhysicalResourceId"] == STABLE_ID
    assert (answer["StackId"], answer["RequestId"], answer["LogicalResourceId"]) == (
        event["StackId"],
        event["RequestId"],
        event["LogicalResourceId"],
    )
    assert answer["NoEcho"] is False
    assert revision(migration_db) == HEAD
    assert {"wallets", "entries", "holds"} <= tables(migration_db)


def test_the_answer_is_put_the_way_cfn_response_puts_it(bucket, migration_db):
    invoke(cfn_event("cfn_schema_migration_create", bucket))

    (put,) = bucket.received
    assert put.method == "PUT"
    assert put.path == "/cfn-response/SchemaMigration?X-Amz-Signature=abc"
    assert put.headers["Content-Type"] == ""  # the pre-signed URL was signed without one
    assert int(put.headers["Content-Length"]) == len(put.raw) < 4096
    assert set(put.body) == {
        "Status",
        "Reason",
        "PhysicalResourceId",
        "StackId",
        "RequestId",
        "LogicalResourceId",
        "NoEcho",
        "Data",
    }


# Update ----------------------------------------------------------------------------------------


def test_update_with_the_same_head_is_idempotent(bucket, migration_db):
    runner.upgrade_to_head(migration_db)
    event = cfn_event("cfn_schema_migration_update", bucket)

    invoke(event)
    invoke(event)

    assert [r.body["Status"] for r in bucket.received] == ["SUCCESS", "SUCCESS"]
    assert [r.body["Data"]["Revision"] for r in bucket.received] == [HEAD, HEAD]
    assert {r.body["PhysicalResourceId"] for r in bucket.received} == {event["PhysicalResourceId"]}
    with psycopg.connect(_libpq(migration_db)) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]


def test_update_migrates_a_database_that_is_behind_forward_to_head(bucket, migration_db):
    runner.upgrade_to_head(migration_db)
    runner.downgrade_to(migration_db, previous_revision())

    invoke(cfn_event("cfn_schema_migration_update", bucket))

    assert (bucket.only["Status"], bucket.only["Data"]["Revision"]) == ("SUCCESS", HEAD)
    assert revision(migration_db) == HEAD


def test_update_to_an_older_schema_head_never_downgrades(bucket, migration_db):
    runner.upgrade_to_head(migration_db)
    before = tables(migration_db)

    invoke(cfn_event("cfn_schema_migration_update", bucket, schema_head=previous_revision()))

    assert bucket.only["Status"] == "SUCCESS"
    assert bucket.only["Data"] == {"Revision": HEAD, "Head": HEAD}
    assert "nothing to do" in bucket.only["Reason"]
    assert revision(migration_db) == HEAD
    assert tables(migration_db) == before


def test_a_database_ahead_of_this_build_is_left_alone(bucket, migration_db):
    """A stack rolled back to an older build after a newer one migrated: keep the newer schema."""
    runner.upgrade_to_head(migration_db)
    with psycopg.connect(_libpq(migration_db)) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")

    invoke(cfn_event("cfn_schema_migration_update", bucket))

    assert bucket.only["Status"] == "SUCCESS"
    assert bucket.only["Data"]["Revision"] == "9999_from_the_future"
    assert "not downgrading" in bucket.only["Reason"]
    assert revision(migration_db) == "9999_from_the_future"


def test_a_schema_head_unknown_to_this_build_applies_nothing_and_says_why(bucket, migration_db):
    invoke(cfn_event("cfn_schema_migration_create", bucket, schema_head="9999_unknown"))

    assert bucket.only["Status"] == "SUCCESS"
    assert "unknown to this build" in bucket.only["Reason"]
    assert revision(migration_db) is None


# Delete ----------------------------------------------------------------------------------------


def test_delete_answers_success_and_keeps_every_table(bucket, migration_db):
    runner.upgrade_to_head(migration_db)
    before = tables(migration_db)
    event = cfn_event("cfn_schema_migration_delete", bucket)

    invoke(event)

    assert bucket.only["Status"] == "SUCCESS"
    assert bucket.only["PhysicalResourceId"] == event["PhysicalResourceId"] == STABLE_ID
    assert tables(migration_db) == before
    assert revision(migration_db) == HEAD


def test_delete_succeeds_even_when_the_database_is_gone(bucket, unreachable_db):
    invoke(cfn_event("cfn_schema_migration_delete", bucket))

    assert bucket.only["Status"] == "SUCCESS"


# Failures --------------------------------------------------------------------------------------


def test_a_failure_answers_failed_with_a_short_reason_and_no_secret(bucket, unreachable_db):
    result = invoke(cfn_event("cfn_schema_migration_create", bucket))

    answer = bucket.only
    assert answer["Status"] == "FAILED"
    assert answer["PhysicalResourceId"] == STABLE_ID
    assert "OperationalError" in answer["Reason"]
    assert "hunter2-not-for-logs" not in answer["Reason"]
    assert "Traceback" not in answer["Reason"]
    assert "127.0.0.1" not in answer["Reason"]
    assert len(answer["Reason"]) <= custom_resource.MAX_REASON_CHARS
    assert result == answer


def test_an_unknown_request_type_answers_failed(bucket, migration_db):
    event = cfn_event("cfn_schema_migration_create", bucket)
    event["RequestType"] = "Rename"

    invoke(event)

    assert bucket.only["Status"] == "FAILED"
    assert revision(migration_db) is None


def test_a_response_url_that_fails_first_is_retried(bucket, migration_db, monkeypatch):
    monkeypatch.setattr(custom_resource, "RETRY_DELAYS", (0.0, 0.0))
    bucket.statuses = [503]

    invoke(cfn_event("cfn_schema_migration_create", bucket))

    assert [r.body["Status"] for r in bucket.received] == ["SUCCESS", "SUCCESS"]
    assert bucket.received[0].raw == bucket.received[1].raw


def test_an_undeliverable_answer_raises_so_lambda_retries_the_request(bucket, migration_db, monkeypatch):
    monkeypatch.setattr(custom_resource, "RETRY_DELAYS", (0.0, 0.0))
    bucket.statuses = [500, 500, 500]

    with pytest.raises(custom_resource.ResponseNotDeliveredError):
        invoke(cfn_event("cfn_schema_migration_create", bucket))

    assert len(bucket.received) == 3


def test_a_response_url_that_is_not_https_is_never_opened(bucket, migration_db, monkeypatch):
    monkeypatch.setattr(custom_resource, "RETRY_DELAYS", (0.0, 0.0))
    event = cfn_event("cfn_schema_migration_delete", bucket)
    event["ResponseURL"] = "file:///etc/passwd"

    with pytest.raises(custom_resource.ResponseNotDeliveredError):
        invoke(event)

    assert bucket.received == []


def test_a_migration_still_running_near_the_timeout_answers_failed_once(bucket, migration_db):
    """Another run holds the migration lock past our deadline: CloudFormation hears FAILED in time,
    and the late finish of this run does not send a second answer."""
    outcome: dict[str, Any] = {}
    with psycopg.connect(_libpq(migration_db), autocommit=True) as blocker:
        blocker.execute("SELECT pg_advisory_lock(%s)", (runner.ADVISORY_LOCK_KEY,))

        def run() -> None:
            try:
                outcome["result"] = invoke(cfn_event("cfn_schema_migration_create", bucket), 0.4)
            except Exception as exc:  # surfaced by the assertions below
                outcome["error"] = exc

        worker = threading.Thread(target=run)
        worker.start()
        assert bucket.arrived.wait(timeout=60), "no answer before the deadline"
        answered_while_blocked = [r.body for r in bucket.received]
        blocker.execute("SELECT pg_advisory_unlock(%s)", (runner.ADVISORY_LOCK_KEY,))
        worker.join(timeout=60)

    assert not worker.is_alive()
    assert "error" not in outcome, outcome
    assert [a["Status"] for a in answered_while_blocked] == ["FAILED"]
    assert "timeout" in answered_while_blocked[0]["Reason"]
    assert len(bucket.received) == 1
    assert outcome["result"]["Status"] == "FAILED"


def test_every_create_or_update_ensures_the_app_login_from_its_secret(bucket, migration_db, monkeypatch):
    import json
    import uuid

    from moto import mock_aws

    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }.items():
        monkeypatch.setenv(name, value)
    login = f"app_{uuid.uuid4().hex[:8]}"
    with mock_aws():
        import boto3

        secret = boto3.client("secretsmanager").create_secret(
            Name=login, SecretString=json.dumps({"username": login, "password": "pw"})
        )
        monkeypatch.setenv("APP_DATABASE_SECRET_ARN", secret["ARN"])
        invoke(cfn_event("cfn_schema_migration_create", bucket))
        with psycopg.connect(_libpq(migration_db)) as connection:
            connection.execute(f"DROP ROLE {login}")  # lost: the next update (nothing to migrate) restores it
        invoke(cfn_event("cfn_schema_migration_update", bucket))

    assert [answer.body["Status"] for answer in bucket.received] == ["SUCCESS", "SUCCESS"]
    with psycopg.connect(_libpq(migration_db)) as connection:
        member = connection.execute("SELECT pg_has_role(%s, 'wallet_app', 'member')", (login,)).fetchone()
    assert member == (True,)


# Time: CloudFormation's ServiceTimeout -----------------------------------------------------------


class _Remaining:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


@pytest.mark.parametrize(
    ("lambda_left", "service_timeout", "answer_at"),
    [
        (300.0, None, 280.0),  # the Lambda timeout is the only limit
        (300.0, "600", 280.0),  # the template's ServiceTimeout is longer than the function's timeout
        (300.0, "120", 100.0),  # ...or shorter: CloudFormation would give up first
        (900.0, "600", 580.0),
        (300.0, "not a number", 280.0),
        (8.0, None, 6.0),  # short timeouts keep a quarter for the answer
    ],
)
def test_the_watchdog_answers_before_whichever_deadline_comes_first(lambda_left, service_timeout, answer_at):
    properties = {} if service_timeout is None else {"ServiceTimeout": service_timeout}

    seconds = custom_resource._seconds_before_deadline(_Remaining(lambda_left), properties)

    assert seconds == pytest.approx(answer_at)


def test_a_migration_blocked_past_the_service_timeout_answers_failed_in_time(bucket, migration_db):
    """ServiceTimeout (set by the template) shorter than the function's timeout: CloudFormation hears
    FAILED before it gives up on the resource, not when the function's own timeout comes."""
    outcome: dict[str, Any] = {}
    event = cfn_event("cfn_schema_migration_create", bucket)
    event["ResourceProperties"]["ServiceTimeout"] = "2"
    with psycopg.connect(_libpq(migration_db), autocommit=True) as blocker:
        blocker.execute("SELECT pg_advisory_lock(%s)", (runner.ADVISORY_LOCK_KEY,))

        def run() -> None:
            try:
                outcome["result"] = invoke(event, timeout_seconds=300.0)
            except Exception as exc:  # surfaced by the assertions below
                outcome["error"] = exc

        worker = threading.Thread(target=run)
        worker.start()
        arrived = bucket.arrived.wait(timeout=20)
        blocker.execute("SELECT pg_advisory_unlock(%s)", (runner.ADVISORY_LOCK_KEY,))
        worker.join(timeout=60)

    assert arrived, "no answer within the ServiceTimeout"
    assert [r.body["Status"] for r in bucket.received] == ["FAILED"]
    assert "timeout" in bucket.received[0].body["Reason"].lower()
    assert "error" not in outcome, outcome
