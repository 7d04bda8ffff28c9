"""The handler side of `make bench`: database preparation and the worker processes.

Every worker is one "Lambda container": its own interpreter (multiprocessing 'spawn'), the real
functions/transfer_create/app.py loaded by file path, its own engine with pool_size 1, and one
request at a time. The parent talks to each worker over a pipe: ("run", scenario, start, end),
("warm", count, traced) and ("stop",). Nothing here imports the layer in the parent process: migrations, seeding and the load
all run in spawned children, so the parent's caches (settings, engine) stay untouched.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAYER_DIR = ROOT / "layers" / "common"
TRANSFER_DIR = ROOT / "functions" / "transfer_create"
EVENT_TEMPLATE = ROOT / "events" / "_apigw_v2_template.json"

OWNER = "bench-user"
CLAIMS = {"sub": OWNER, "scope": "wallet:read"}
CURRENCY = "USD"
WALLET_FUNDS = 10**9  # minor units per ordinary wallet: small transfers never exhaust it
HOT_WALLET_FUNDS = 10**12
MAX_TRANSFER = 100

UNIFORM = "uniform"
HOT = "hot"
INGEST = "ingest"

# The ingestion phase: SQS batches of BATCH_SIZE deposit.settled records, DUPLICATE_SHARE of them
# redeliveries of events already sent (at-least-once delivery), each batch one handler call.
BATCH_SIZE = 100
DUPLICATE_SHARE = 0.1
PROVIDER = "acme-pay"  # an accepted provider (WALLET_PROVIDERS default)


class Container:
    """One function as Lambda hosts it, loaded by the local runtime from template.yaml (its code
    root, the layer on sys.path, its memory and timeout in the context): the handler that runs here
    is the one the template deploys."""

    def __init__(self, logical_id: str) -> None:
        from tools.local_runtime.context import FunctionHost
        from tools.local_runtime.template import Template

        self._host = FunctionHost(Template(ROOT / "template.yaml"))
        self._function = self._host.function(logical_id)
        self._logical_id = logical_id
        self._handler: Any = None

    def load(self) -> Container:
        """The cold import of the handler module (what the bench times)."""
        self._handler = self._host.handler(self._logical_id)
        return self

    def __call__(self, event: dict[str, Any]) -> Any:
        from tools.local_runtime.context import LambdaContext

        return self._handler(event, LambdaContext.for_function(self._function))


class TransferEvents:
    """API Gateway HTTP API v2 events for POST /v1/transfers, built on the shared sample event."""

    def __init__(self) -> None:
        template = json.loads(EVENT_TEMPLATE.read_text())
        template["rawPath"] = "/v1/transfers"
        template["routeKey"] = "POST /v1/transfers"
        template["requestContext"]["http"].update(method="POST", path="/v1/transfers")
        template["requestContext"]["routeKey"] = "POST /v1/transfers"
        template["requestContext"]["authorizer"] = {"jwt": {"claims": CLAIMS, "scopes": None}}
        self._template = template

    def transfer(self, source: str, destination: str, amount: int) -> dict[str, Any]:
        event = copy.copy(self._template)
        context = copy.copy(event["requestContext"])
        context["requestId"] = str(uuid.uuid4())
        event["requestContext"] = context
        event["headers"] = {
            **self._template["headers"],
            "content-type": "application/json",
            "idempotency-key": str(uuid.uuid4()),
        }
        event["body"] = json.dumps(
            {
                "source_wallet_id": source,
                "destination_wallet_id": destination,
                "amount": amount,
                "currency": CURRENCY,
            }
        )
        return event


class DepositBatches:
    """SQS events of deposit.settled records for random wallets; a share of every batch repeats
    events sent before (the previous batch's, or earlier ones of the same batch for the first)."""

    def __init__(self, worker: int, wallet_ids: list[str], rng: random.Random) -> None:
        self._worker, self._wallet_ids, self._rng = worker, wallet_ids, rng
        self._sequence = 0
        self._previous: list[str] = []

    def _record(self, body: str) -> dict[str, Any]:
        self._sequence += 1
        return {
            "messageId": str(uuid.uuid4()),
            "receiptHandle": f"bench-{self._worker}-{self._sequence}",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795374000000"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:wallet-bench-ingestion",
            "awsRegion": "us-east-1",
        }

    def batch(self) -> tuple[dict[str, Any], int]:
        """(SQS event, how many of its records are new events)."""
        duplicates = round(BATCH_SIZE * DUPLICATE_SHARE)
        fresh = []
        for _ in range(BATCH_SIZE - duplicates):
            self._sequence += 1
            fresh.append(
                json.dumps(
                    {
                        "event_id": f"dep-{self._worker}-{os.getpid()}-{self._sequence}",
                        "provider": PROVIDER,
                        "type": "deposit.settled",
                        "occurred_at": "2026-11-22T19:00:00Z",
                        "wallet_id": self._rng.choice(self._wallet_ids),
                        "amount": self._rng.randint(1, MAX_TRANSFER),
                        "currency": CURRENCY,
                    }
                )
            )
        repeated = self._rng.sample(self._previous or fresh, duplicates)
        bodies = [*fresh, *repeated]
        if self._previous:
            self._rng.shuffle(bodies)  # redeliveries of earlier batches arrive anywhere
        self._previous = fresh
        return {"Records": [self._record(body) for body in bodies]}, len(fresh)


def pick_pair(rng: random.Random, wallet_count: int, scenario: str) -> tuple[int, int]:
    """Indices of (source, destination): random distinct wallets, or wallet #0 on one side."""
    if scenario == HOT:
        other = rng.randrange(1, wallet_count)
        return (0, other) if rng.random() < 0.5 else (other, 0)
    source, destination = rng.sample(range(wallet_count), 2)
    return source, destination


# ---------------------------------------------------------------------------------------------
# Database preparation (runs in a spawned child)


def prepare_database(database_url: str, wallet_count: int, reply: Connection) -> None:
    """Migrate with the migration function's own handler, then create and fund the wallets in SQL:
    each wallet gets a credit transaction with its two balanced entries, as the credit handler would
    write it (a thousand credits through the handler would cost seconds and measure nothing)."""
    try:
        os.environ["DATABASE_URL"] = database_url
        # Its logger binds sys.stdout when the module loads: silence its JSON line from there on.
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            result = Container("MigrationFunction").load()({"action": "upgrade"})
        if result.get("status") != "ok":
            raise RuntimeError(f"migration failed: {result}")

        import psycopg

        from wallet_core.adapters.db import libpq_url
        from wallet_core.adapters.repositories import system_account_id

        with psycopg.connect(libpq_url(database_url)) as conn:
            conn.execute(
                "INSERT INTO system_accounts (id, currency, created_at) VALUES (%s, %s, now()) "
                "ON CONFLICT DO NOTHING",
                (system_account_id(CURRENCY), CURRENCY),
            )
            conn.execute(
                """
                CREATE TEMP TABLE seed ON COMMIT DROP AS
                SELECT n, gen_random_uuid() AS wallet_id, gen_random_uuid() AS transaction_id,
                       CASE WHEN n = 0 THEN %s ELSE %s END::bigint AS amount
                FROM generate_series(0, %s - 1) AS n
                """,
                (HOT_WALLET_FUNDS, WALLET_FUNDS, wallet_count),
            )
            conn.execute(
                """
                INSERT INTO wallets (id, owner_id, currency, status, balance, held, version, metadata,
                                     created_at, updated_at)
                SELECT wallet_id, %s, %s, 'active', amount, 0, 2, '{}'::jsonb, now(), now() FROM seed
                """,
                (OWNER, CURRENCY),
            )
            conn.execute(
                """
                INSERT INTO transactions (id, kind, status, amount, currency, destination_wallet_id,
                                          metadata, created_by, created_at)
                SELECT transaction_id, 'credit', 'posted', amount, %s, wallet_id, '{}'::jsonb,
                       'bench-seed', now()
                FROM seed
                """,
                (CURRENCY,),
            )
            conn.execute(
                """
                INSERT INTO entries (transaction_id, wallet_id, system_account_id, currency, amount,
                                     balance_after, wallet_version, created_at)
                SELECT transaction_id, wallet_id, NULL, %s, amount, amount, 2, now() FROM seed
                UNION ALL
                SELECT transaction_id, NULL, %s, %s, -amount, NULL, NULL, now() FROM seed
                """,
                (CURRENCY, system_account_id(CURRENCY), CURRENCY),
            )
            ids = [str(row[0]) for row in conn.execute("SELECT wallet_id FROM seed ORDER BY n")]
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        reply.send(("ok", ids))
    except BaseException as exc:
        reply.send(("error", f"{type(exc).__name__}: {exc}"))
        raise


LEDGER_CHECK_SQL = """
SELECT
  (SELECT coalesce(sum(amount), 0) FROM entries) AS entries_total,
  (SELECT count(*) FROM wallets w
     WHERE w.balance <> (SELECT coalesce(sum(e.amount), 0) FROM entries e WHERE e.wallet_id = w.id)
  ) AS wallets_off,
  (SELECT count(*) FROM wallets WHERE balance - held < 0) AS wallets_negative,
  (SELECT count(*) FROM transactions WHERE kind = 'transfer') AS transfers
"""


# ---------------------------------------------------------------------------------------------
# Workers


@dataclass
class RunResult:
    scenario: str
    statuses: Counter = field(default_factory=Counter)
    ok: int = 0  # 201s completed inside the window
    latencies_ms: list[float] = field(default_factory=list)  # handler call only, 201s in window
    cpu_seconds: float = 0.0  # this process's CPU inside the window
    problems: dict[int, str] = field(default_factory=dict)  # one sample body per non-201 status
    # ingestion only: batches handled, records not acknowledged, and the time this worker spent
    # from the window's start to the end of its last batch (which may end after the window)
    batches: int = 0
    records: int = 0
    failed_records: int = 0
    elapsed: float = 0.0


def _problem_sample(result: dict[str, Any]) -> str:
    body = result.get("body") or ""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body[:200]
    if isinstance(parsed, dict):
        return str(parsed.get("code") or parsed.get("title") or parsed)[:200]
    return str(parsed)[:200]


def run_window(
    handler: Any,
    events: TransferEvents,
    wallet_ids: list[str],
    scenario: str,
    start: float,
    end: float,
    rng: random.Random,
) -> RunResult:
    """Call the handler back to back from `start` to `end` (time.monotonic, system-wide on Linux)."""
    result = RunResult(scenario=scenario)
    with contextlib.suppress(ValueError):
        time.sleep(max(0.0, start - time.monotonic()))
    cpu_start = time.process_time()
    count = len(wallet_ids)
    while True:
        source, destination = pick_pair(rng, count, scenario)
        event = events.transfer(wallet_ids[source], wallet_ids[destination], rng.randint(1, MAX_TRANSFER))
        began = time.monotonic()
        if began >= end:
            break
        response = handler(event)
        finished = time.monotonic()
        status = response["statusCode"]
        if finished > end:
            break  # completed after the window closed: not counted, like pgbench
        result.statuses[status] += 1
        if status == 201:
            result.ok += 1
            result.latencies_ms.append((finished - began) * 1000)
        elif status not in result.problems:
            result.problems[status] = _problem_sample(response)
    result.cpu_seconds = time.process_time() - cpu_start
    return result


@dataclass
class WarmResult:
    """One container's transfers back to back with nothing else running: the handler's own cost."""

    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0  # this process's CPU over all `count` calls
    round_trips: float = 0.0  # client/server turns per call, from libpq's protocol trace


def warm_run(
    handler: Any, events: TransferEvents, wallet_ids: list[str], count: int, traced: int, rng: random.Random
) -> WarmResult:
    """`count` transfers one after another (events built beforehand, so only the handler is timed),
    then `traced` more with libpq's protocol trace on, to count round trips."""

    def build(n: int) -> list[dict[str, Any]]:
        pairs = [pick_pair(rng, len(wallet_ids), UNIFORM) for _ in range(n)]
        return [events.transfer(wallet_ids[s], wallet_ids[d], rng.randint(1, MAX_TRANSFER)) for s, d in pairs]

    result = WarmResult()
    prepared = build(count)
    cpu_start = time.process_time()
    for event in prepared:
        began = time.perf_counter()
        response = handler(event)
        result.latencies_ms.append((time.perf_counter() - began) * 1000)
        result.statuses[response["statusCode"]] += 1
    result.cpu_seconds = time.process_time() - cpu_start
    traced_events = iter(build(traced))
    result.round_trips = count_round_trips(lambda: handler(next(traced_events)), traced)
    return result


def count_round_trips(call: Any, times: int) -> float:
    """Round trips per call: libpq logs every protocol message it sends (F) and receives (B); each
    switch from sending to receiving is one wait for the server, however many statements a
    pipeline carried. Reads the connection of the container's pool (size 1: the one every call
    uses)."""
    from psycopg.pq import Trace

    from wallet_core.adapters.db import get_pool

    pool = get_pool()
    pooled = pool.checkout()
    pool.checkin(pooled)
    pgconn = pooled.connection.pgconn
    with tempfile.TemporaryFile() as trace:
        pgconn.trace(os.dup(trace.fileno()))  # libpq gets its own descriptor (it never closes it)
        pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
        try:
            for _ in range(times):
                call()
        finally:
            pgconn.untrace()  # flushes the trace
        trace.seek(0)
        lines = trace.read().decode(errors="replace").splitlines()
    directions = [line[:1] for line in lines if line[:1] in ("F", "B")]
    turns = sum(1 for pair in itertools.pairwise(directions) if pair == ("F", "B"))
    return turns / times if times else 0.0


def ingest_window(handler: Any, batches: DepositBatches, start: float, end: float) -> RunResult:
    """Hand the ingestion handler one batch after another from `start` until `end`; the batch under
    way at `end` is finished and counted, and the worker's rate is its events over its own time."""
    result = RunResult(scenario=INGEST)
    with contextlib.suppress(ValueError):
        time.sleep(max(0.0, start - time.monotonic()))
    cpu_start = time.process_time()
    began_window = time.monotonic()
    while time.monotonic() < end:
        event, fresh = batches.batch()
        began = time.monotonic()
        response = handler(event)
        finished = time.monotonic()
        failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        fresh_ids = {record["messageId"] for record in event["Records"][:fresh]}
        result.batches += 1
        result.records += len(event["Records"])
        result.failed_records += len(failed)
        result.ok += len(fresh_ids - failed)  # new events applied (duplicates only acknowledged)
        result.latencies_ms.append((finished - began) * 1000)
        result.elapsed = finished - began_window
    result.cpu_seconds = time.process_time() - cpu_start
    return result


def ingest_worker_main(index: int, database_url: str, wallet_ids: list[str], channel: Connection) -> None:
    """One ingestion container: the real functions/ingest_events/app.py, one batch at a time."""
    try:
        _configure_worker(database_url)
        container = Container("IngestEventsFunction")
        began = time.perf_counter()
        handler = container.load()
        import_seconds = time.perf_counter() - began
        rng = random.Random(index * 7919 + os.getpid())  # nosec B311  # load generator, not crypto
        batches = DepositBatches(index, wallet_ids, rng)
        began = time.perf_counter()
        first = handler(batches.batch()[0])
        first_seconds = time.perf_counter() - began
        failures = first.get("batchItemFailures", [])
        status = 200 if not failures else 500
        channel.send(("ready", import_seconds, first_seconds, status, f"{len(failures)} records failed"))
        while True:
            command = channel.recv()
            if command[0] == "stop":
                break
            _, _, start, end = command
            channel.send(("result", ingest_window(handler, batches, start, end)))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass  # Ctrl-C reaches the whole process group; the parent cleans up
    except BaseException as exc:
        with contextlib.suppress(Exception):
            channel.send(("error", f"ingest worker {index}: {type(exc).__name__}: {exc}"))
        raise


def _configure_worker(database_url: str) -> None:
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "DB_POOL_SIZE": "1",
            "POWERTOOLS_SERVICE_NAME": "wallet",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_METRICS_NAMESPACE": "WalletBench",
        }
    )
    # Lambda ships stdout to CloudWatch; here logs would only scroll the table away.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # closed with the process


def worker_main(index: int, database_url: str, wallet_ids: list[str], channel: Connection) -> None:
    """One container: cold import, one warm-up request, then windows of load on command."""
    try:
        _configure_worker(database_url)
        container = Container("TransferCreateFunction")
        began = time.perf_counter()
        handler = container.load()
        import_seconds = time.perf_counter() - began
        events = TransferEvents()
        rng = random.Random(index * 7919 + os.getpid())  # nosec B311  # load generator, not crypto
        source, destination = pick_pair(rng, len(wallet_ids), UNIFORM)
        began = time.perf_counter()
        first = handler(events.transfer(wallet_ids[source], wallet_ids[destination], 1))
        first_seconds = time.perf_counter() - began
        channel.send(("ready", import_seconds, first_seconds, first["statusCode"], _problem_sample(first)))
        while True:
            command = channel.recv()
            if command[0] == "stop":
                break
            if command[0] == "warm":
                _, count, traced = command
                channel.send(("result", warm_run(handler, events, wallet_ids, count, traced, rng)))
                continue
            _, scenario, start, end = command
            channel.send(("result", run_window(handler, events, wallet_ids, scenario, start, end, rng)))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass  # Ctrl-C reaches the whole process group; the parent cleans up
    except BaseException as exc:
        with contextlib.suppress(Exception):
            channel.send(("error", f"worker {index}: {type(exc).__name__}: {exc}"))
        raise
