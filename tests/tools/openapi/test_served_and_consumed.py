"""The local runtime serves the document and an offline /docs page, and a client generated from
the document by openapi-python-client drives the real API: create, credit, transfer, read."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import openapi_client, pgserver
from tools.fuzz import Runtime

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runtime(postgres_server, tmp_path_factory) -> Iterator[Runtime]:
    env = {**os.environ, "DATABASE_URL": postgres_server.create_database("wallet_openapi_e2e")}
    running = Runtime(tmp_path_factory.mktemp("state"), pgserver.free_port(), env=env)
    try:
        running.wait_for_tokens()
        yield running
    finally:
        running.stop()


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (127.0.0.1)
        return response.status, response.headers["Content-Type"], response.read()


def test_the_banner_points_at_the_docs(runtime):
    assert any(f"{runtime.url}/docs" in line for line in runtime.lines)


def test_openapi_json_is_the_committed_document(runtime):
    status, content_type, body = get(runtime.url + "/openapi.json")
    assert (status, content_type) == (200, "application/json")
    assert body == (ROOT / "docs" / "openapi.json").read_bytes()


def test_docs_is_a_swagger_ui_page_whose_assets_are_served_locally(runtime):
    status, content_type, page = get(runtime.url + "/docs")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    html = page.decode()
    assert 'url: "/openapi.json"' in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/docs/"), f"{asset} would need the internet"
        status, _, body = get(runtime.url + asset)
        assert status == 200
        assert len(body) > 10_000
    _, _, script = get(runtime.url + "/docs/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in script
    # Swagger UI renders OpenAPI 3.1 from major version 5 on.
    assert re.search(rb'"5\.\d+\.\d+"', script)


def test_a_generated_client_creates_credits_transfers_and_reads(runtime, tmp_path):
    directory = openapi_client.generate(cache=tmp_path / "client")
    sys.path.insert(0, str(directory))
    try:
        client_module = importlib.import_module("wallet_client")
        wallets = importlib.import_module("wallet_client.api.wallets")
        movements = importlib.import_module("wallet_client.api.movements")
        models = importlib.import_module("wallet_client.models")
        for name in ("create_wallet", "get_wallet", "list_wallet_transactions"):
            importlib.import_module(f"wallet_client.api.wallets.{name}")
        for name in ("credit_wallet", "create_transfer", "get_transaction"):
            importlib.import_module(f"wallet_client.api.movements.{name}")
    finally:
        sys.path.remove(str(directory))

    user = client_module.AuthenticatedClient(base_url=runtime.url, token=runtime.value("export USER_TOKEN="))
    admin = client_module.AuthenticatedClient(
        base_url=runtime.url, token=runtime.value("export ADMIN_TOKEN=")
    )

    def key() -> str:
        return str(uuid.uuid4())

    created = wallets.create_wallet.sync_detailed(
        client=user,
        body=models.WalletCreateRequest(currency=models.WalletCreateRequestCurrency.USD),
        idempotency_key=key(),
    )
    assert created.status_code == 201, created.content
    mine = created.parsed
    assert isinstance(mine, models.Wallet)
    assert (mine.owner_id, mine.balance, mine.status) == ("user-1", 0, models.WalletStatus.ACTIVE)

    theirs = wallets.create_wallet.sync(
        client=admin,
        body=models.WalletCreateRequest(currency=models.WalletCreateRequestCurrency.USD, owner_id="user-2"),
        idempotency_key=key(),
    )
    assert isinstance(theirs, models.Wallet), theirs

    credit = movements.credit_wallet.sync(
        mine.id, client=admin, body=models.MovementRequest(amount=125_000), idempotency_key=key()
    )
    assert isinstance(credit, models.Transaction), credit
    assert (credit.kind, credit.amount) == (models.TransactionKind.CREDIT, 125_000)

    transfer_key = key()
    body = models.TransferCreateRequest(
        source_wallet_id=mine.id,
        destination_wallet_id=theirs.id,
        amount=25_000,
        currency=models.TransferCreateRequestCurrency.USD,
    )
    transfer = movements.create_transfer.sync_detailed(client=user, body=body, idempotency_key=transfer_key)
    assert transfer.status_code == 201, transfer.content
    replay = movements.create_transfer.sync_detailed(client=user, body=body, idempotency_key=transfer_key)
    assert replay.status_code == 201
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.parsed.id == transfer.parsed.id

    read = wallets.get_wallet.sync(mine.id, client=user)
    assert (read.balance, read.available) == (100_000, 100_000)
    assert movements.get_transaction.sync(transfer.parsed.id, client=user).amount == 25_000
    history = wallets.list_wallet_transactions.sync(mine.id, client=user, limit=10)
    assert [item.kind for item in history.items] == [
        models.HistoryItemKind.TRANSFER,
        models.HistoryItemKind.CREDIT,
    ]
    assert [item.balance_after for item in history.items] == [100_000, 125_000]

    # Another owner's wallet is invisible (through the client's own authenticated transport).
    invisible = user.get_httpx_client().get(f"/v1/wallets/{theirs.id}")
    assert invisible.status_code == 404
    assert json.loads(invisible.content)["code"] == "not_found"
