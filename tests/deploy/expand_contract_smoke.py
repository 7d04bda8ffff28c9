"""Smoke scenario of an OLD release, run against a database migrated by THIS commit.

Run by tests/deploy/test_expand_contract.py in a subprocess as
    python expand_contract_smoke.py <old tree>
with the environment pointing at the database (DATABASE_URL). It imports nothing from the new
tree: the old release's layer (<old tree>/layers/common) and functions (<old tree>/functions/*/app.py)
only, exactly as Lambda would run them while a canary shifts traffic. Self-contained on purpose (it
must work with any old tree, whatever its tests/ held). Prints one JSON object: the steps it ran,
the steps the old release could not run (its functions did not exist yet), and the first failure.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ADMIN = {"sub": "expand-contract-operator", "scope": "wallet:admin wallet:read"}
OWNER = {"sub": "expand-contract-alice", "scope": "wallet:read"}
PROVIDER = "acme-pay"


class StepFailed(Exception):
    pass


class Context:
    function_name = "expand-contract"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:expand-contract"
    log_group_name = "/aws/lambda/expand-contract"
    log_stream_name = "expand-contract"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._started = time.monotonic()

    def get_remaining_time_in_millis(self) -> int:
        return int((30 - (time.monotonic() - self._started)) * 1000)


class OldRelease:
    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self._handlers: dict[str, Any] = {}

    def has(self, function: str) -> bool:
        return (self.tree / "functions" / function / "app.py").is_file()

    def handler(self, function: str) -> Any:
        if function not in self._handlers:
            path = self.tree / "functions" / function / "app.py"
            spec = importlib.util.spec_from_file_location(f"old_release_{function}", path)
            if spec is None or spec.loader is None:
                raise StepFailed(f"cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._handlers[function] = module.handler
        return self._handlers[function]

    def call(
        self,
        function: str,
        method: str,
        path: str,
        *,
        claims: dict[str, str] = ADMIN,
        body: Any = None,
        key: str | None = None,
        expect: int,
    ) -> Any:
        headers = {"content-type": "application/json", "host": "expand-contract.local"}
        if key is not None:
            headers["idempotency-key"] = key
        event = {
            "version": "2.0",
            "routeKey": f"{method} {path}",
            "rawPath": path,
            "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "expandcontract",
                "authorizer": {"jwt": {"claims": claims, "scopes": None}},
                "domainName": "expand-contract.local",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
                "requestId": str(uuid.uuid4()),
                "routeKey": f"{method} {path}",
                "stage": "$default",
                "timeEpoch": int(time.time() * 1000),
            },
            "isBase64Encoded": False,
        }
        if body is not None:
            event["body"] = json.dumps(body)
        result = self.handler(function)(event, Context())
        raw = result.get("body") or ""
        parsed = json.loads(raw) if raw else None
        if result["statusCode"] != expect:
            raise StepFailed(f"{method} {path} ({function}): {result['statusCode']} {raw[:500]}")
        return parsed


def scenario(old: OldRelease, ran: list[str], skipped: list[str]) -> None:
    """Appends each step's name to `ran` as it starts, so a failure report says how far it got."""
    run_id = uuid.uuid4().hex[:8]

    def step(name: str, *functions: str) -> bool:
        missing = [f for f in functions if not old.has(f)]
        if missing:
            skipped.append(f"{name} (old release has no {', '.join(missing)})")
            return False
        ran.append(name)
        return True

    step("open wallets", "wallet_create")
    source = old.call(
        "wallet_create",
        "POST",
        "/v1/wallets",
        body={"currency": "USD", "owner_id": OWNER["sub"]},
        key=f"ec-open-a-{run_id}",
        expect=201,
    )
    destination = old.call(
        "wallet_create",
        "POST",
        "/v1/wallets",
        body={"currency": "USD", "owner_id": "expand-contract-bob"},
        key=f"ec-open-b-{run_id}",
        expect=201,
    )
    a, b = source["id"], destination["id"]
    expected = {a: 0, b: 0}

    if step("credit, and its idempotent replay", "credit_create"):
        credit = {"amount": 10_000, "reference": f"ec-{run_id}"}
        first = old.call(
            "credit_create",
            "POST",
            f"/v1/wallets/{a}/credits",
            body=credit,
            key=f"ec-credit-{run_id}",
            expect=201,
        )
        again = old.call(
            "credit_create",
            "POST",
            f"/v1/wallets/{a}/credits",
            body=credit,
            key=f"ec-credit-{run_id}",
            expect=201,
        )
        if again["id"] != first["id"]:
            raise StepFailed(f"credit replay created a second transaction: {first['id']} != {again['id']}")
        expected[a] += 10_000

    if step("transfer", "transfer_create"):
        transfer = old.call(
            "transfer_create",
            "POST",
            "/v1/transfers",
            body={"source_wallet_id": a, "destination_wallet_id": b, "amount": 2_500, "currency": "USD"},
            key=f"ec-transfer-{run_id}",
            expect=201,
        )
        expected[a] -= 2_500
        expected[b] += 2_500
        if step("read the transaction", "transaction_get"):
            old.call("transaction_get", "GET", f"/v1/transactions/{transfer['id']}", expect=200)

    held = 0
    if step("hold, read it, void another", "hold_create", "hold_get", "hold_void"):
        hold = old.call(
            "hold_create",
            "POST",
            "/v1/holds",
            body={"wallet_id": a, "amount": 1_000},
            key=f"ec-hold-{run_id}",
            expect=201,
        )
        old.call("hold_get", "GET", f"/v1/holds/{hold['id']}", expect=200)
        voided = old.call(
            "hold_create",
            "POST",
            "/v1/holds",
            body={"wallet_id": a, "amount": 500},
            key=f"ec-hold2-{run_id}",
            expect=201,
        )
        old.call("hold_void", "POST", f"/v1/holds/{voided['id']}/void", key=f"ec-void-{run_id}", expect=200)
        held = 1_000

    if step("ingest a provider deposit, delivered twice", "ingest_events"):
        body = {
            "event_id": f"ec-deposit-{run_id}",
            "provider": PROVIDER,
            "type": "deposit.settled",
            "occurred_at": "2026-11-22T19:00:00Z",
            "wallet_id": b,
            "amount": 700,
            "currency": "USD",
        }
        for delivery in range(2):  # SQS delivers at least once: the duplicate must not credit twice
            record = {
                "messageId": f"ec-{run_id}-{delivery}",
                "receiptHandle": f"ec-receipt-{delivery}",
                "body": json.dumps(body),
                "attributes": {
                    "ApproximateReceiveCount": str(delivery + 1),
                    "SentTimestamp": "1795374000000",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:expand-contract",
                "awsRegion": "us-east-1",
            }
            result = old.handler("ingest_events")({"Records": [record]}, Context())
            if result.get("batchItemFailures"):
                raise StepFailed(f"ingest_events reported failures: {result}")
        expected[b] += 700

    if step("read wallets and history", "wallet_get", "wallet_history"):
        for wallet_id, balance in expected.items():
            wallet = old.call("wallet_get", "GET", f"/v1/wallets/{wallet_id}", expect=200)
            if wallet["balance"] != balance:
                raise StepFailed(f"wallet {wallet_id}: balance {wallet['balance']}, expected {balance}")
            if wallet_id == a and "held" in wallet and wallet["held"] != held:
                raise StepFailed(f"wallet {wallet_id}: held {wallet['held']}, expected {held}")
            old.call("wallet_history", "GET", f"/v1/wallets/{wallet_id}/transactions", expect=200)


def main() -> int:
    tree = Path(sys.argv[1]).resolve()
    # Only the old release's layer: never this (new) tree's wallet_core.
    sys.path[:] = [str(tree / "layers" / "common")] + [p for p in sys.path[1:] if "layers/common" not in p]
    old = OldRelease(tree)
    report: dict[str, Any] = {"ran": [], "skipped": [], "failure": None}
    try:
        scenario(old, report["ran"], report["skipped"])
        import wallet_core

        report["wallet_core"] = wallet_core.__file__
    except Exception as error:  # every failure is the test's finding, reported as data
        report["failure"] = f"{type(error).__name__}: {error}"
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
