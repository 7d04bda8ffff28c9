"""Soak: many clients, tens of thousands of operations, chaos; then prove no money moved wrongly.

    make soak SIZE=20000            (python -m tools.soak --operations 20000 [--clients 8] ...)

What runs (the real handlers, called as Lambda calls them, on a real PostgreSQL: embedded, or the
server DATABASE_URL names, in a database of its own that is dropped afterwards):
- CLIENTS threads, each a client with its own Lambda "container" (its own copy of each handler
  module), performing a random mix of credits, debits, transfers, holds (then captured or voided)
  and provider deposits through the SQS ingestion handler, until OPERATIONS operations are done;
- random retries: a share of requests is sent again with the same Idempotency-Key (as a client
  does after a timeout) and must answer the same status and the same resource;
- every answer that is not final (503 service_unavailable, 409 idempotency_request_in_progress,
  a 5xx) is retried with the same key until it is final, as a client must;
- a chaos thread terminates the soak's database connections at random moments
  (pg_terminate_backend), mostly in the middle of transactions;
- duplicate SQS deliveries: a share of provider events is delivered again, in the same batch or a
  later one, and a batch item reported as failed is redelivered.

What is checked at the end, against a model kept from the ANSWERS only:
- money is conserved: per currency the ledger's entries sum to zero;
- every wallet's balance equals the sum of its entries and the model's balance (every
  acknowledged operation applied exactly once, every rejected one not at all);
- the ledger holds exactly one transaction per acknowledged money movement (none lost, none
  doubled), and each provider event id is recorded once;
- every replay answered with the first answer's resource;
- no answer was a 500 (a 503 is allowed: it is retried, and counted).
Figures are printed, and written as Markdown to --summary (CI: $GITHUB_STEP_SUMMARY).
Exit status 1 when any check fails. Bounded: stops at --operations or --max-seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tools.local_runtime.runtime import libpq_url

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "layers" / "common", ROOT / "migrations"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

ADMIN = {"sub": "soak-operator", "scope": "wallet:admin wallet:read"}
PROVIDER = "acme-pay"
CURRENCY = "USD"
FINAL = {200, 201, 404, 409, 422}  # a final answer; 409 only when it is not "in progress"
NOT_FINAL_CODES = {"idempotency_request_in_progress", "service_unavailable"}
SQS_RECORD = {
    "receiptHandle": "soak",
    "messageAttributes": {},
    "md5OfBody": "",
    "eventSource": "aws:sqs",
    "awsRegion": "us-east-1",
}


@dataclass
class Figures:
    operations: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    retries_not_final: int = 0
    replays_checked: int = 0
    duplicate_deliveries: int = 0
    redelivered_failures: int = 0
    kills: int = 0
    kills_in_transaction: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, message: str) -> None:
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(message)


class Model:
    """What the answers say happened: the expected balance of every wallet, transaction ids."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.balance: dict[str, int] = {}
        self.transactions: set[str] = set()
        self.events_applied: set[str] = set()

    def applied(self, transaction_id: str, changes: dict[str, int]) -> None:
        with self.lock:
            if transaction_id in self.transactions:
                raise AssertionError(f"transaction {transaction_id} acknowledged twice")
            self.transactions.add(transaction_id)
            for wallet, delta in changes.items():
                self.balance[wallet] += delta


class Client:
    def __init__(self, index: int, wallets: list[str], model: Model, figures: Figures, args: Any) -> None:
        from tests.support.lambda_runtime import FakeLambdaContext, api_event, load_handler, parse_result

        self._api_event, self._parse, self._context = api_event, parse_result, FakeLambdaContext
        self._load = load_handler
        self.index = index
        # Seeded: a failing soak can be re-run with the same choices (not cryptography).
        self.rng = random.Random(args.seed * 1000 + index)  # nosec B311
        self.wallets = wallets
        self.model = model
        self.figures = figures
        self.retry_share = args.retry_share
        self.duplicate_share = args.duplicate_share

    # -- calls ---------------------------------------------------------------------------------
    def _final(self, function: str, method: str, path: str, body: Any, key: str | None) -> Any:
        """The first final answer, the request sent again with the same key until there is one (a
        client does so after a 503, an in-progress 409 or a timeout); None after 200 attempts."""
        for attempt in range(200):
            event = self._api_event(method, path, body=body, claims=ADMIN, idempotency_key=key)
            try:
                handler = self._load(f"functions/{function}")
                result = self._parse(handler(event, self._context(function_name=function)))
            except Exception as error:  # a handler that raises is a 500 for the client
                self.figures.fail(f"{function} raised {type(error).__name__}: {error}")
                result = None
            status = result.status if result is not None else 500
            with self.figures.lock:
                self.figures.answers[str(status)] += 1
            if result is not None and status >= 500 and status != 503:
                self.figures.fail(f"{method} {path}: {status} {result.raw_body[:200]}")
            if result is not None and status in FINAL and result.code not in NOT_FINAL_CODES:
                return result
            with self.figures.lock:
                self.figures.retries_not_final += 1
            time.sleep(min(0.2, 0.005 * (attempt + 1)))
        self.figures.fail(f"{method} {path}: no final answer after 200 attempts")
        return None

    def call(self, function: str, method: str, path: str, body: Any = None) -> Any:
        """Until a final answer, with the same key; sometimes once more, to check the replay answers
        the same status and the same resource."""
        key = f"soak-{uuid.uuid4()}" if method == "POST" else None
        first = self._final(function, method, path, body, key)
        if first is None or key is None or self.rng.random() >= self.retry_share:
            return first
        again = self._final(function, method, path, body, key)
        with self.figures.lock:
            self.figures.replays_checked += 1
        same = [
            r.body.get("id") if isinstance(r.body, dict) else None for r in (first, again) if r is not None
        ]
        if again is None or again.status != first.status or len(set(same)) != 1:
            self.figures.fail(
                f"replay of {method} {path}: {first.status} then {again and again.raw_body[:200]}"
            )
        return first

    # -- operations ----------------------------------------------------------------------------
    def _move(
        self, function: str, path: str, body: Any, changes: Any, *, ok: int = 201, short: bool = False
    ) -> Any:
        """One command; its movement (`changes`) is applied to the model once acknowledged. Any
        other answer fails the soak, but insufficient_funds where money may be `short`."""
        result = self.call(function, "POST", path, body)
        if result is not None and result.status == ok:
            if changes is not None:
                self.model.applied(result.body["id"], changes)
            return result
        if result is None or not (short and result.code == "insufficient_funds"):
            self.figures.fail(f"{function}: {result and result.status} {result and result.code}")
        return None

    def credit(self) -> None:
        w, amount = self.rng.choice(self.wallets), self.rng.randint(1, 5_000)
        self._move("credit_create", f"/v1/wallets/{w}/credits", {"amount": amount}, {w: amount})

    def debit(self) -> None:
        w, amount = self.rng.choice(self.wallets), self.rng.randint(1, 5_000)
        self._move("debit_create", f"/v1/wallets/{w}/debits", {"amount": amount}, {w: -amount}, short=True)

    def transfer(self) -> None:
        (src, dst), amount = self.rng.sample(self.wallets, 2), self.rng.randint(1, 5_000)
        body = {"source_wallet_id": src, "destination_wallet_id": dst, "amount": amount, "currency": CURRENCY}
        self._move("transfer_create", "/v1/transfers", body, {src: -amount, dst: amount}, short=True)

    def hold(self) -> None:
        """A hold, then captured (a movement) or voided (none)."""
        w, amount = self.rng.choice(self.wallets), self.rng.randint(1, 2_000)
        held = self._move("hold_create", "/v1/holds", {"wallet_id": w, "amount": amount}, None, short=True)
        if held is not None and self.rng.random() < 0.5:
            self._move("hold_capture", f"/v1/holds/{held.body['id']}/capture", {}, {w: -amount})
        elif held is not None:
            self._move("hold_void", f"/v1/holds/{held.body['id']}/void", None, None, ok=200)

    def deposits(self) -> None:
        """One SQS batch of deposit.settled events, some delivered twice; failures redelivered."""
        events = [
            {
                "event_id": f"soak-{uuid.uuid4()}",
                "provider": PROVIDER,
                "type": "deposit.settled",
                "occurred_at": "2026-11-22T19:00:00Z",
                "wallet_id": self.rng.choice(self.wallets),
                "amount": self.rng.randint(1, 5_000),
                "currency": CURRENCY,
            }
            for _ in range(self.rng.randint(1, 5))
        ]
        duplicates = [e for e in events if self.rng.random() < self.duplicate_share]
        pending = events + duplicates
        with self.figures.lock:
            self.figures.duplicate_deliveries += len(duplicates)
        handler = self._load("functions/ingest_events")
        for attempt in range(200):
            attributes = {"ApproximateReceiveCount": str(attempt + 1), "SentTimestamp": "1795374000000"}
            records = [
                {
                    **SQS_RECORD,
                    "messageId": f"m-{uuid.uuid4()}",
                    "body": json.dumps(e),
                    "attributes": attributes,
                }
                for e in pending
            ]
            try:
                answer = handler({"Records": records}, self._context(function_name="ingest_events"))
            except Exception as error:  # Lambda would redeliver the whole batch
                failed_ids = {r["messageId"] for r in records}
                self.figures.fail(f"ingest_events raised {type(error).__name__}: {error}")
            else:
                failed_ids = {item["itemIdentifier"] for item in answer.get("batchItemFailures", [])}
            pending = [e for e, r in zip(pending, records, strict=True) if r["messageId"] in failed_ids]
            if not pending:
                break
            with self.figures.lock:
                self.figures.redelivered_failures += len(pending)
            time.sleep(min(0.2, 0.005 * (attempt + 1)))
        else:
            self.figures.fail(f"deposits: {len(pending)} events never acknowledged")
        # Acknowledged: applied exactly once whatever the number of deliveries.
        with self.model.lock:
            for e in events:
                self.model.events_applied.add(str(e["event_id"]))
                self.model.balance[str(e["wallet_id"])] += int(str(e["amount"]))

    def run(self, budget: Callable[[], bool]) -> None:
        mix: list[tuple[str, Callable[[], None], int]] = [
            ("transfer", self.transfer, 40),
            ("credit", self.credit, 15),
            ("debit", self.debit, 15),
            ("hold", self.hold, 15),
            ("deposits", self.deposits, 15),
        ]
        names, operations, weights = zip(*mix, strict=True)
        while budget():
            index = self.rng.choices(range(len(operations)), weights=weights)[0]
            operations[index]()
            with self.figures.lock:
                self.figures.operations[names[index]] += 1


def chaos(
    admin_url: str, database: str, stop: threading.Event, figures: Figures, interval: float, seed: int
) -> None:
    """Terminates one of the soak's connections every ~interval seconds, preferring busy ones."""
    rng = random.Random(seed)  # nosec B311  # seeded chaos, reproducible
    with psycopg.connect(admin_url, autocommit=True) as connection:
        while not stop.wait(rng.uniform(0.2, 1.8) * interval):
            rows = connection.execute(
                "SELECT pid, state FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'",
                (database,),
            ).fetchall()
            busy = [row for row in rows if row[1] in ("active", "idle in transaction")]
            target = rng.choice(busy or rows) if rows else None
            if target is None:
                continue
            connection.execute("SELECT pg_terminate_backend(%s)", (target[0],))
            with figures.lock:
                figures.kills += 1
                figures.kills_in_transaction += target[1] in ("active", "idle in transaction")


def verify(url: str, model: Model, figures: Figures) -> dict[str, Any]:
    with psycopg.connect(url) as connection:

        def rows(sql: str, *args: Any) -> list[Any]:
            return connection.execute(sql, args).fetchall()

        sums = dict(rows("SELECT currency, sum(amount) FROM entries GROUP BY currency"))
        wallets = {
            str(w): (b, e)
            for w, b, e in rows(
                "SELECT w.id, w.balance, coalesce(sum(e.amount), 0) FROM wallets w"
                " LEFT JOIN entries e ON e.wallet_id = w.id GROUP BY w.id, w.balance"
            )
        }
        transactions = {str(t) for (t,) in rows("SELECT id FROM transactions")}
        deposits = {
            str(t)
            for (t,) in rows("SELECT transaction_id FROM provider_events WHERE transaction_id IS NOT NULL")
        }
        ((held, active_holds),) = rows(
            "SELECT (SELECT coalesce(sum(held), 0) FROM wallets), (SELECT count(*) FROM holds WHERE status = 'active')"
        )
        events = dict(
            rows(
                "SELECT event_id, count(*) FROM provider_events WHERE provider = %s GROUP BY event_id",
                PROVIDER,
            )
        )
    for currency, total in sums.items():
        if total != 0:
            figures.fail(f"money not conserved: entries in {currency} sum to {total}")
    for wallet, expected in model.balance.items():
        balance, entries = wallets[wallet]
        if balance != entries:
            figures.fail(f"wallet {wallet}: balance {balance} != sum of its entries {entries}")
        if balance != expected:
            figures.fail(f"wallet {wallet}: balance {balance}, acknowledged operations say {expected}")
    if held or active_holds:
        figures.fail(f"every hold was captured or voided, yet {active_holds} are active and {held} is held")
    if lost := model.transactions - transactions:
        figures.fail(
            f"{len(lost)} acknowledged transactions missing from the ledger, e.g. {sorted(lost)[:3]}"
        )
    if extra := transactions - model.transactions - deposits:
        figures.fail(
            f"{len(extra)} transactions nobody was told about (applied twice?), e.g. {sorted(extra)[:3]}"
        )
    if doubled := {e: n for e, n in events.items() if n != 1}:
        figures.fail(f"provider events recorded more than once: {list(doubled.items())[:3]}")
    if set(events) != model.events_applied:
        figures.fail(f"provider events: {len(events)} recorded, {len(model.events_applied)} acknowledged")
    return {
        "transactions": len(transactions),
        "provider_events": len(events),
        "wallets": len(model.balance),
        "money_in_wallets": sum(b for b, _ in wallets.values()),
        "entries_sum": {c: int(v) for c, v in sums.items()},
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Soak the ledger: retries, killed connections, duplicates.")
    parser.add_argument("--operations", type=int, default=20_000, help="logical operations in total")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--wallets", type=int, default=40)
    parser.add_argument(
        "--funding", type=int, default=1_000, help="first credit of every wallet (small: some are refused)"
    )
    parser.add_argument("--retry-share", type=float, default=0.2, help="share of POSTs sent again, same key")
    parser.add_argument("--duplicate-share", type=float, default=0.3, help="share of events delivered twice")
    parser.add_argument(
        "--kill-interval", type=float, default=0.25, help="mean seconds between kills (0: none)"
    )
    parser.add_argument("--max-seconds", type=float, default=3600)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "13")))
    parser.add_argument(
        "--summary", default=os.environ.get("GITHUB_STEP_SUMMARY"), help="Markdown file to append to"
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def soak_database(clients: int) -> Iterator[tuple[str, str, str]]:
    """(admin libpq URL, database name, its URL) of a new database, dropped afterwards; on the server
    DATABASE_URL names, else on an embedded one. Points this process at it."""
    from tools import pgserver

    embedded = None if os.environ.get("DATABASE_URL") else pgserver.temporary()
    admin = libpq_url(embedded.url if embedded else os.environ["DATABASE_URL"])
    database = f"wallet_soak_{uuid.uuid4().hex[:8]}"
    url = "postgresql+psycopg://" + admin.split("://", 1)[1].rsplit("/", 1)[0] + f"/{database}"
    saved = dict(os.environ)
    try:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        os.environ.update(
            {
                "DATABASE_URL": url,
                "DB_POOL_SIZE": str(clients + 2),
                "IDEMPOTENCY_WAIT_SECONDS": "2",
                "WALLET_PROVIDERS": PROVIDER,
                "POWERTOOLS_LOG_LEVEL": "CRITICAL",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_METRICS_NAMESPACE": "Soak",
                "POWERTOOLS_SERVICE_NAME": "wallet-soak",
                "AWS_DEFAULT_REGION": "us-east-1",
                "STAGE": "soak",
            }
        )
        yield admin, database, url
    finally:
        os.environ.clear()
        os.environ.update(saved)
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if embedded is not None:
            embedded.stop()


def open_wallets(args: argparse.Namespace, model: Model, figures: Figures) -> list[str]:
    setup = Client(-1, [], model, figures, args)
    for _ in range(args.wallets):
        wallet = setup.call(
            "wallet_create", "POST", "/v1/wallets", {"currency": CURRENCY, "owner_id": "soak"}
        ).body["id"]
        model.balance[wallet] = 0
        funded = setup.call(
            "credit_create", "POST", f"/v1/wallets/{wallet}/credits", {"amount": args.funding}
        )
        model.applied(funded.body["id"], {wallet: args.funding})
    return list(model.balance)


def load(
    args: argparse.Namespace, admin: str, database: str, wallets: list[str], model: Model, figures: Figures
) -> float:
    """The clients and the chaos thread, until the operations are done; returns the seconds taken."""
    remaining = iter(range(args.operations))
    deadline = time.monotonic() + args.max_seconds

    def budget() -> bool:  # next() on a range iterator is atomic under the GIL
        return next(remaining, None) is not None and time.monotonic() < deadline

    stop = threading.Event()
    threads = [
        threading.Thread(
            target=Client(i, wallets, model, figures, args).run, args=(budget,), name=f"soak-{i}"
        )
        for i in range(args.clients)
    ]
    killer = threading.Thread(
        target=chaos, args=(admin, database, stop, figures, args.kill_interval, args.seed)
    )
    started = time.monotonic()
    for thread in threads + ([killer] if args.kill_interval > 0 else []):
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    stop.set()
    if killer.is_alive():
        killer.join()
    return seconds


def report(
    args: argparse.Namespace, figures: Figures, ledger: dict[str, Any], seconds: float, total: float
) -> None:
    done = sum(figures.operations.values())
    figures_out = {
        "operations": done,
        "by_kind": dict(figures.operations),
        "clients": args.clients,
        "load_seconds": round(seconds, 1),
        "operations_per_second": round(done / seconds, 1) if seconds else None,
        "answers": dict(sorted(figures.answers.items())),
        "same_key_replays_checked": figures.replays_checked,
        "not_final_answers_retried": figures.retries_not_final,
        "duplicate_sqs_deliveries": figures.duplicate_deliveries,
        "failed_records_redelivered": figures.redelivered_failures,
        "connections_killed": figures.kills,
        "killed_mid_transaction": figures.kills_in_transaction,
        "ledger": ledger,
        "total_seconds": round(total, 1),
        "failures": figures.failures,
    }
    print(json.dumps(figures_out, indent=2))
    verdict = "PASSED" if not figures.failures else f"FAILED ({len(figures.failures)} findings)"
    print(f"soak {verdict}: {done} operations by {args.clients} clients in {seconds:.0f} s")
    if args.summary:
        rows = [
            f"| {name} | `{json.dumps(value)}` |" for name, value in figures_out.items() if name != "failures"
        ]
        failures = [f"- {failure}" for failure in figures.failures]
        lines = [f"## Soak {verdict}", "", "| figure | value |", "|---|---|", *rows, *failures, "", ""]
        with open(args.summary, "a", encoding="utf-8") as summary:
            summary.write("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    # psycopg logs every pipeline the chaos thread cuts; those are the point, not news.
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    figures, model = Figures(), Model()
    started = time.monotonic()
    with soak_database(args.clients) as (admin, database, url):
        import runner

        runner.upgrade_to_head(url)
        wallets = open_wallets(args, model, figures)
        seconds = load(args, admin, database, wallets, model, figures)
        ledger = verify(libpq_url(url), model, figures)
    report(args, figures, ledger, seconds, time.monotonic() - started)
    return 0 if not figures.failures else 1


if __name__ == "__main__":
    sys.exit(main())
