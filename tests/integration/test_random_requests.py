"""A seeded random-request generator over every HTTP route of template.yaml, through the real
handlers: hostile bodies, media types, headers, queries, path parameters and claims. Whatever it
sends, the answer is never a 5xx, every error is a problem document with its request id, and the
ledger's invariants still hold afterwards.

Reproduce or widen a run: FUZZ_SEED=<n> FUZZ_REQUESTS=<n> [FUZZ_REPORT=<file>] pytest
tests/integration/test_random_requests.py (a failure names the seed and the request's index;
FUZZ_REPORT writes every bad answer, not only the first 25). No new dependency: random.Random with a
fixed seed is enough to make every run the same run, and schemathesis (driven by the OpenAPI
document) covers the schema-aware side over HTTP.
"""

from __future__ import annotations

import base64
import json
import os
import random
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN, ALICE, BOB
from tests.support.lambda_runtime import ROOT, FakeLambdaContext, api_event, load_handler, parse_result
from tools.local_runtime.template import Template

SEED = int(os.environ.get("FUZZ_SEED", "20261201"))
REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "1500"))

NUL = "\x00"
TEXTS = [
    "",
    " ",
    NUL,
    f"a{NUL}b",
    "\x01",
    "\x1b[31m",
    "\x7f",
    "\ud800",
    "tab\there",
    "line\r\nbreak",
    "é",
    "😀",
    "\u202e",
    "a" * 41,
    "a" * 129,
    "a" * 256,
    "a" * 513,
    "%00",
    "../../etc/passwd",
    "' OR 1=1 --",
    "NaN",
    "null",
    "1e999",
    "USD",
    "usd",
    "XYZ",
    "2026-13-45T00:00:00Z",
    "2026-12-01T00:00:00",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00",
    "2999-01-01T00:00:00Z",
]
NUMBERS = [
    0,
    -1,
    1,
    2,
    100,
    10**15,
    10**15 + 1,
    2**53,
    2**63,
    2**64,
    -(2**63),
    1.5,
    1e308,
    10**19,
    True,
    False,
]
CLAIMS = [
    ADMIN,
    ADMIN,
    ALICE,
    ALICE,
    BOB,
    None,
    {"sub": ""},
    {"sub": "x" * 300, "scope": "wallet:admin"},
    {"sub": f"a{NUL}", "scope": "wallet:admin"},
    {"sub": "carol", "scope": "[wallet:admin wallet:read]"},
    {"sub": "dave", "scope": ""},
]
CONTENT_TYPES = [
    "application/json",
    "application/json",
    "application/json",
    "APPLICATION/JSON",
    "application/json; charset=utf-8",
    "application/json; charset=utf-16",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "",
    None,
    "application/json, text/plain",
    f"application/json{NUL}",
]


class Generator:
    """Random requests for one route at a time, built from a table of what each body holds."""

    def __init__(self, rng: random.Random, ids: dict[str, list[str]]) -> None:
        self.rng = rng
        self.ids = ids
        self.keys: list[str] = []
        # Each request is hostile in one respect (or all, or none), so that most reach past the
        # checks that come first and the route's own handling gets its share of hostile input.
        self.hostile = "all"

    def hostile_in(self, aspect: str) -> bool:
        return self.hostile in (aspect, "all")

    def choice(self, values: list[Any]) -> Any:
        return self.rng.choice(values)

    def any_id(self, kind: str, aspect: str = "path") -> str:
        real = 0.3 if self.hostile_in(aspect) else 1.0
        return self.choice(self.ids[kind]) if self.rng.random() < real else self.odd_id()

    def odd_id(self) -> str:
        return self.choice(
            [
                str(uuid.uuid4()),
                str(uuid.uuid4()).upper(),
                "{" + str(uuid.uuid4()) + "}",
                "urn:uuid:" + str(uuid.uuid4()),
                "00000000-0000-0000-0000-000000000000",
                "not-a-uuid",
                "%00",
                NUL,
                "a" * 300,
                "1",
                "-1",
                "😀",
            ]
        )

    def value(self, depth: int = 0) -> Any:
        roll = self.rng.random()
        if roll < 0.45:
            return self.choice(TEXTS)
        if roll < 0.75:
            return self.choice(NUMBERS)
        if roll < 0.8 or depth > 2:
            return self.choice([None, [], {}, [1], {"a": "b"}])
        if roll < 0.9:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 3))]
        return {self.choice(TEXTS[:12]) or "k": self.value(depth + 1) for _ in range(self.rng.randint(0, 3))}

    def field(self, name: str) -> Any:
        valid = {
            "currency": lambda: self.choice(["USD", "EUR", "JPY"]),
            "amount": lambda: self.rng.randint(1, 500),
            "owner_id": lambda: self.choice(["alice", "bob", f"owner-{self.rng.randint(1, 9)}"]),
            "external_ref": lambda: f"ref-{uuid.uuid4()}",
            "metadata": lambda: {"k": "v"},
            "reference": lambda: "ref",
            "description": lambda: "desc",
            "reason": lambda: "because",
            "wallet_id": lambda: self.any_id("wallet", "body"),
            "source_wallet_id": lambda: self.any_id("wallet", "body"),
            "destination_wallet_id": lambda: self.any_id("wallet", "body"),
            "expires_at": lambda: "2999-01-01T00:00:00Z",
        }
        if name in valid and self.rng.random() < (0.6 if self.hostile_in("body") else 0.97):
            return valid[name]()
        return self.value()

    def body(self, fields: list[str]) -> tuple[str | None, bool]:
        """(raw body, isBase64Encoded)."""
        roll = self.rng.random()
        document: dict[str, Any] = {name: self.field(name) for name in fields if self.rng.random() < 0.8}
        if not self.hostile_in("body"):
            return json.dumps(document), False
        if self.rng.random() < 0.15:
            document[self.choice(["colour", f"x{NUL}", "", "amount "])] = self.value()
        if roll < 0.55:
            return json.dumps(document), False
        raw = json.dumps(document)
        mutations = [
            lambda: (None, False),
            lambda: ("", False),
            lambda: (raw[: self.rng.randint(0, max(len(raw) - 1, 0))], False),
            lambda: (raw[:-1] + ', "amount": 1, "amount": 2}' if raw != "{}" else '{"a": 1, "a": 2}', False),
            lambda: ('{"amount": NaN}', False),
            lambda: ('{"amount": -Infinity}', False),
            lambda: ('{"amount": ' + "9" * self.rng.choice([21, 400, 5000]) + "}", False),
            lambda: ("[" * self.rng.choice([33, 1200, 5000]) + "]" * 5000, False),
            lambda: ('{"metadata": ' + '{"a": ' * 40 + "1" + "}" * 41, False),
            lambda: ("null", False),
            lambda: ("[]", False),
            lambda: ('"just a string"', False),
            lambda: ("\ufeff" + raw, False),
            lambda: ('{"reference": "\\ud800"}', False),
            lambda: ('{"description": "' + "d" * 70000 + '"}', False),
            lambda: (base64.b64encode(bytes(self.rng.randrange(256) for _ in range(40))).decode(), True),
            lambda: (base64.b64encode(raw.encode()).decode(), True),
            lambda: ("%%% not base64 %%%", True),
            lambda: ("amount=5&currency=USD", False),
        ]
        return self.choice(mutations)()

    def query(self, names: list[str]) -> dict[str, str]:
        if not self.hostile_in("query"):
            return self.choice(
                [{}, {"limit": str(self.rng.randint(1, 100))}, {"cursor": self.ids["cursor"][0]}]
            )
        query: dict[str, str] = {}
        for name in [*names, "unexpected"]:
            if self.rng.random() < 0.5:
                continue
            query[name] = self.choice(
                [
                    str(self.rng.randint(-5, 150)),
                    "ten",
                    "",
                    NUL,
                    f"a{NUL}",
                    "1e3",
                    "99999999999999999999999",
                    "WzEwXQ",
                    "W3RydWVd",
                    "WzFd",
                    "!!!",
                    "a" * 600,
                    "alice",
                    "😀",
                    *self.ids["cursor"],
                ]
            )
        return query

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        content_type = self.choice(CONTENT_TYPES) if self.hostile_in("media") else "application/json"
        if content_type is not None:
            headers["content-type"] = content_type
        roll = self.rng.random() if self.hostile_in("key") else 0.0
        if roll < 0.6:
            key = str(uuid.uuid4())
            self.keys.append(key)
            headers["idempotency-key"] = key
        elif roll < 0.7 and self.keys:
            headers["idempotency-key"] = self.choice(self.keys)  # replays and reuses
        elif roll < 0.9:
            headers["idempotency-key"] = self.choice(
                ["", " ", NUL, "k\x01", "é", "a" * 256, "a" * 255, "\ud800"]
            )
        if self.rng.random() < 0.1:
            headers[self.choice(["accept-encoding", "x-weird", "content-encoding"])] = self.choice(
                ["gzip", NUL, ""]
            )
        return headers


# What each body holds (anything else is still sent: unknown fields, other routes' fields).
BODY_FIELDS = {
    "POST /v1/wallets": ["currency", "owner_id", "external_ref", "metadata"],
    "POST /v1/wallets/{wallet_id}/credits": ["amount", "reference", "description", "metadata"],
    "POST /v1/wallets/{wallet_id}/debits": ["amount", "reference", "description", "metadata"],
    "POST /v1/transfers": [
        "source_wallet_id",
        "destination_wallet_id",
        "amount",
        "currency",
        "reference",
        "description",
        "metadata",
    ],
    "POST /v1/transactions/{transaction_id}/reversals": ["reason"],
    "POST /v1/holds": ["wallet_id", "amount", "reference", "expires_at"],
    "POST /v1/holds/{hold_id}/capture": ["amount", "destination_wallet_id"],
}
QUERY_NAMES = ["owner_id", "limit", "cursor"]


def _routes() -> list[tuple[str, str, str]]:
    """(method, path, code dir) of every HTTP route in template.yaml."""
    template = Template(ROOT / "template.yaml")
    functions = template.functions()
    routes = []
    for route in template.http_routes():
        code_dir = functions[route.function_id].module_path.parent.relative_to(ROOT)
        routes.append((route.method, route.path, str(code_dir)))
    return routes


def _fill(path: str, generator: Generator) -> tuple[str, dict[str, str]]:
    parameters = {}
    for name, kind in (("wallet_id", "wallet"), ("transaction_id", "transaction"), ("hold_id", "hold")):
        if "{" + name + "}" in path:
            parameters[name] = generator.any_id(kind)
            path = path.replace("{" + name + "}", parameters[name])
    return path, parameters


@pytest.fixture
def world(api) -> dict[str, list[str]]:
    """Real wallets, transactions, holds and cursors, so requests reach past the 404s."""
    alice = api.funded_wallet(10_000, ALICE)
    admin = api.funded_wallet(10_000, ADMIN)
    frozen = api.funded_wallet(100, ADMIN)
    api.call("wallet_freeze", "POST", f"/v1/wallets/{frozen['id']}/freeze", claims=ADMIN)
    transfer = api.transfer(alice["id"], admin["id"], 10, claims=ALICE).body
    hold = api.create_hold(admin["id"], 500).body
    for _ in range(3):
        api.credit(alice["id"], 1)
    history = api.call(
        "wallet_history", "GET", f"/v1/wallets/{alice['id']}/transactions", claims=ALICE, query={"limit": "1"}
    )
    return {
        "wallet": [alice["id"], admin["id"], frozen["id"]],
        "transaction": [transfer["id"]],
        "hold": [hold["id"]],
        "cursor": [history.body["next_cursor"]],
    }


@pytest.mark.slow
def test_no_random_request_gets_a_5xx(world, invariants):
    rng = random.Random(SEED)
    generator = Generator(rng, world)
    routes = _routes()
    failures: list[str] = []
    per_route: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    for index in range(REQUESTS):
        generator.hostile = rng.choice(["body", "media", "key", "query", "path", "claims", "none", "all"])
        method, template_path, code_dir = routes[index % len(routes)]
        route_key = f"{method} {template_path}"
        path, parameters = _fill(template_path, generator)
        raw_body, encoded = generator.body(BODY_FIELDS.get(route_key, ["amount", "currency"]))
        if method == "GET" and (rng.random() < 0.8 or not generator.hostile_in("body")):
            raw_body, encoded = None, False
        claims = generator.choice(CLAIMS if generator.hostile_in("claims") else [ADMIN, ADMIN, ALICE])
        event = api_event(
            method,
            path,
            raw_body=raw_body,
            claims=dict(claims) if claims is not None else None,
            query=generator.query(QUERY_NAMES) if method == "GET" or rng.random() < 0.2 else None,
        )
        event["headers"] = generator.headers()
        event["isBase64Encoded"] = encoded
        if parameters:
            event["pathParameters"] = parameters
        per_route[route_key] += 1

        try:
            response = load_handler(code_dir)(event, FakeLambdaContext(function_name=code_dir))
            result = parse_result(response)
        except Exception as exc:  # a handler that raises is a 502/500 behind API Gateway
            failures.append(f"#{index} {route_key}: raised {type(exc).__name__}: {exc}"[:300])
            continue
        statuses[result.status] += 1
        summary = (
            f"#{index} {route_key} path={path!r} body={str(raw_body)[:80]!r} claims={claims!r:.60}"
            f" headers={event['headers']!r:.120} -> {result.status}"
        )
        if result.status >= 500:
            failures.append(f"{summary} {result.raw_body[:200]}")
        elif result.status >= 400 and template_path.startswith("/v1"):
            body = result.body if isinstance(result.body, dict) else {}
            # A replay is the first request's answer, byte for byte: its request id is the first one.
            replayed = result.headers.get("idempotent-replayed") == "true"
            expected_id = body.get("request_id") if replayed else event["requestContext"]["requestId"]
            if result.headers.get("content-type") != "application/problem+json" or not (
                body.get("request_id") and body.get("request_id") == expected_id
            ):
                failures.append(
                    f"{summary}: not a problem document with its request id: {result.raw_body[:200]}"
                )

    if os.environ.get("FUZZ_REPORT"):  # every bad answer, for a long run's triage
        Path(os.environ["FUZZ_REPORT"]).write_text("\n".join(failures) + "\n")
    assert not failures, f"seed {SEED}: {len(failures)} bad answers:\n" + "\n".join(failures[:25])
    assert set(per_route) == {f"{m} {p}" for m, p, _ in routes}, "every route of the template was exercised"
    # The generator reaches past the gate: effects happen, and so do most kinds of refusal.
    assert statuses[200], statuses
    assert statuses[201], statuses
    assert {400, 401, 403, 404, 413, 415} <= set(statuses), statuses
    assert invariants() == []
