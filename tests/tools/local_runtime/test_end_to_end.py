"""`python -m tools.local_runtime run` as a newcomer uses it: real template, real handlers, a fresh
database, real HTTP with the tokens from the banner, then Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from tools import pgserver
from tools.fuzz import Runtime
from tools.local_runtime import runtime as sam

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def call(base: str, method: str, path: str, token: str | None = None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if method == "POST":
        headers["Idempotency-Key"] = str(uuid.uuid4())
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def eventually(condition, timeout: float = 30) -> bool:
    """Polls a condition on something another process does (not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def deposit(tmp_path: Path, env: dict[str, str], external_ref: str, amount: int) -> str:
    """Sends a deposit.settled provider event with `make send-event`; its event id."""
    event_id = f"e2e-{uuid.uuid4().hex}"
    event = {"event_id": event_id, "provider": "acme-pay", "type": "deposit.settled", "currency": "USD"}
    (tmp_path / f"{event_id}.json").write_text(
        json.dumps(
            {**event, "occurred_at": "2026-11-22T19:00:00Z", "external_ref": external_ref, "amount": amount}
        )
    )
    assert cli(env, "send-event", str(tmp_path / f"{event_id}.json"))["sent"] == 1
    return event_id


def cli(env: dict[str, str], *args: str):
    """A local runtime command against the running instance (found through runtime.json)."""
    command = [sys.executable, "-m", "tools.local_runtime", *args]
    return json.loads(
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=60).stdout
    )


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(params=["database_url", "embedded"])
def database_env(request) -> dict[str, str]:
    """A fresh database named by DATABASE_URL, or none: then `run` starts (and must stop) its own
    persistent embedded server in the state directory."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if request.param == "database_url":
        env["DATABASE_URL"] = request.getfixturevalue("postgres_server").create_database("wallet_local_e2e")
    return env


def test_run_serves_the_real_api_and_stops_cleanly_on_sigint(database_env, tmp_path):
    port = pgserver.free_port()
    state = tmp_path / "state"
    env = {**database_env, "LOCAL_RUNTIME_DIR": str(state)}
    # Short redelivery so a poison event reaches the DLQ within the test (AWS: 360 s and 5 receives).
    fast = (
        "--parameter",
        "ProviderEventsVisibilityTimeout=1",
        "--parameter",
        "ProviderEventsMaxReceiveCount=2",
    )
    runtime = Runtime(state, port, *fast, env=database_env)
    base = runtime.url
    ports: list[int | None] = []
    try:
        user, admin = runtime.wait_for_tokens()  # the banner's tokens, once migrated

        status, health = call(base, "GET", "/health")
        assert (status, health["status"], health["database"]) == (200, "ok", "ok")
        info = json.loads((state / "runtime.json").read_text())
        assert info["api_url"] == base
        # sam local invoke --env-vars: this run's database, as a container reaches it.
        sam_env = json.loads((state / "sam-env.json").read_text())
        assert sam_env["TransferCreateFunction"]["DATABASE_URL"] == sam.container_url(info["database_url"])
        assert "host.docker.internal" in sam_env["MigrationFunction"]["DATABASE_URL"]
        assert runtime.value("  sam local   --env-vars ")

        assert call(base, "GET", "/v1/wallets")[0] == 401
        status, mine = call(base, "POST", "/v1/wallets", user, {"currency": "USD"})
        assert (status, mine["owner_id"]) == (201, "user-1")
        status, theirs = call(base, "POST", "/v1/wallets", admin, {"currency": "USD", "owner_id": "user-2"})
        assert (status, theirs["owner_id"]) == (201, "user-2")
        status, _ = call(base, "POST", f"/v1/wallets/{mine['id']}/credits", admin, {"amount": 1000})
        assert status == 201
        status, transfer = call(
            base,
            "POST",
            "/v1/transfers",
            user,
            {
                "source_wallet_id": mine["id"],
                "destination_wallet_id": theirs["id"],
                "amount": 250,
                "currency": "USD",
            },
        )
        assert (status, transfer["kind"], transfer["amount"]) == (201, "transfer", 250)
        assert call(base, "GET", f"/v1/wallets/{mine['id']}", user)[1]["balance"] == 750
        assert call(base, "GET", f"/v1/wallets/{theirs['id']}", admin)[1]["balance"] == 250
        assert call(base, "GET", f"/v1/wallets/{theirs['id']}", user)[0] == 404  # not visible to user-1

        # A provider deposit through the local queue, by the same command a developer uses.
        ref = f"acme-acct-{uuid.uuid4().hex[:8]}"
        status, banked = call(
            base, "POST", "/v1/wallets", admin, {"currency": "USD", "owner_id": "user-1", "external_ref": ref}
        )
        assert status == 201
        deposited = deposit(tmp_path, env, ref, 4200)
        assert eventually(
            lambda: call(base, "GET", f"/v1/wallets/{banked['id']}", user)[1]["balance"] == 4200
        )

        # A poison event (its wallet never appears) is retried, then dead-lettered: `make dlq` lists it.
        poison = deposit(tmp_path, env, "never-opened", 1)
        dead: set[str] = set()

        def dead_lettered() -> bool:
            dead.update(json.loads(m["body"])["event_id"] for m in cli(env, "dlq")["messages"])
            return poison in dead

        assert eventually(dead_lettered, timeout=60), dead
        assert deposited not in dead
        ports = [urllib.parse.urlsplit(info["sqs_endpoint_url"]).port]
    finally:
        assert runtime.stop() == 0, "the local runtime did not stop cleanly on SIGINT"
    assert port_is_free(port)
    assert all(port_is_free(started) for started in ports), ports  # the local SQS endpoint
    assert not (state / "runtime.json").exists()
    assert runtime.lines[-1] == "stopped."
    if "DATABASE_URL" not in database_env:
        # The embedded server was stopped through pg_ctl (its pid file goes with it); data is kept.
        assert not (state / "pgdata" / "postmaster.pid").exists()
        assert (state / "pgdata" / "PG_VERSION").exists()
