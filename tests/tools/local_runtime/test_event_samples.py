"""Every function in template.yaml has a sample in events/, and every sample invokes successfully
through the local runtime's FunctionHost (what `make invoke FN=... EVENT=...` runs).

The samples name fixed, documented ids (wallet A, hold H, ...). Here those objects are created
first and each sample's ids are swapped for the real ones, so one run walks the whole flow: wallets,
credit, debit, transfer, reversal, holds, provider events, probes, migrations and the sweep.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ADMIN, Api
from tools.local_runtime.context import FunctionHost
from tools.local_runtime.template import Template

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "events"

# The ids and names the samples use (see README "Sample events").
WALLET_A = "3f2b6c1e-8a4d-4f7b-9c2e-5d1a0b7e6f41"  # user-1's USD wallet, external_ref acme-acct-1001
WALLET_B = "5a8d0c2e-6b1f-4d3a-9e7c-1f2a3b4c5d6e"  # user-2's USD wallet
WALLET_C = "c4e9a7b2-3d5f-4a1e-8b6c-0d2f4e6a8c1b"  # an empty wallet of user-1, to close
CREDIT_T = "8e1d2c3b-4a5f-4e6d-9c8b-7a6f5e4d3c2b"  # a credit of wallet A, to read and reverse
HOLD_H = "9c7e2d4a-1b3f-4e6a-8d5c-2f0b9a7e1c63"  # a hold on wallet A
EXTERNAL_REF = "acme-acct-1001"
PROVIDER = "acme-pay"  # the default of WALLET_PROVIDERS

# Samples other than `<handler module>.json` (an API function's sample is named after its module).
# The CloudFormation and CodeDeploy samples need a response endpoint or CodeDeploy: tests/deploy
# invokes those.
OTHER_SAMPLES = {
    "MigrationFunction": ["migration_current.json", "migration_upgrade.json"],
    "IngestEventsFunction": [
        f"sqs_{name}.json"
        for name in (
            "deposit_settled",
            "withdrawal_settled",
            "withdrawal_failed",
            "balance_reported",
            "mixed_batch",
        )
    ],
    "HoldExpirySweepFunction": ["hold_expiry_sweep.json"],
}
IN_TESTS_DEPLOY = [f"cfn_schema_migration_{action}.json" for action in ("create", "update", "delete")] + [
    "codedeploy_pretraffic.json"
]
NOT_A_SAMPLE = {"_apigw_v2_template.json"}  # the base the test factories build API events from


@pytest.fixture(scope="module")
def template() -> Template:
    return Template(ROOT / "template.yaml")


def test_every_sample_is_used_and_deployment_samples_by_the_deploy_tests(template):
    """A sample event is optional for a new route (tests build API events from the shared
    _apigw_v2_template.json); every sample that exists is invoked, here or in tests/deploy."""
    api = {route.function_id for route in template.http_routes()}
    named = {f"{template.function(f).handler.split('.')[0]}.json" for f in api}
    listed = {name for names in OTHER_SAMPLES.values() for name in names} | set(IN_TESTS_DEPLOY)
    on_disk = {path.name for path in EVENTS.glob("*.json")} - NOT_A_SAMPLE
    assert (named & on_disk) | listed == on_disk
    assert listed <= on_disk
    deploy_tests = "\n".join(path.read_text() for path in (ROOT / "tests" / "deploy").glob("test_*.py"))
    for name in IN_TESTS_DEPLOY:
        assert name.removesuffix(".json") in deploy_tests, f"no test in tests/deploy uses events/{name}"


class Samples:
    """Loads a sample with its documented ids replaced by this run's objects."""

    def __init__(self) -> None:
        run = uuid.uuid4().hex[:8]
        # Provider event ids and idempotency keys are unique forever: make this run's unique too.
        self.replacements = {
            EXTERNAL_REF: f"acme-acct-{run}",
            PROVIDER: f"acme-pay-{run}",
            "-sample-1": f"-sample-{run}",
        }
        self.provider = self.replacements[PROVIDER]

    def load(self, name: str, **ids: str) -> Any:
        text = (EVENTS / name).read_text()
        for old, new in {**self.replacements, **ids}.items():
            text = text.replace(old, new)
        return json.loads(text)


def _http(response: dict[str, Any]) -> tuple[int, Any]:
    return response["statusCode"], json.loads(response.get("body") or "null")


def test_every_sample_invokes_successfully_through_the_local_runtime(
    template, database_url, api: Api, db: psycopg.Connection, monkeypatch
):
    from wallet_core.config import get_settings

    host = FunctionHost(template)
    samples = Samples()
    monkeypatch.setenv("WALLET_PROVIDERS", samples.provider)  # this run's own provider is accepted
    get_settings.cache_clear()
    ref = samples.replacements[EXTERNAL_REF]

    a = api.create_wallet(ADMIN, owner_id="user-1", external_ref=ref)["id"]
    b = api.create_wallet(ADMIN, owner_id="user-2")["id"]
    c = api.create_wallet(ADMIN, owner_id="user-1")["id"]
    credit = api.credit(a, 500_000)
    assert credit.status == 201, credit.body
    holds = []
    for _ in range(3):
        hold = api.create_hold(a, 40_000)
        assert hold.status == 201, hold.body
        holds.append(hold.body["id"])
    ids = {WALLET_A: a, WALLET_B: b, WALLET_C: c, CREDIT_T: credit.body["id"]}

    def http(function: str, sample: str, hold: str | None = None) -> tuple[int, Any]:
        event = samples.load(sample, **ids, **({HOLD_H: hold} if hold else {}))
        return _http(host.invoke(function, event))

    migration = host.invoke("MigrationFunction", samples.load("migration_current.json"))
    assert migration["status"] == "ok"
    assert migration["revision"] == migration["head"]
    assert host.invoke("MigrationFunction", samples.load("migration_upgrade.json"))["status"] == "ok"

    assert http("HealthFunction", "health.json")[0] == 200
    status, ready = http("ReadyFunction", "ready.json")
    assert (status, ready["status"]) == (200, "ready")
    status, version = http("VersionFunction", "version.json")
    assert (status, version["schema_head"]) == (200, migration["head"])

    status, wallet = http("WalletCreateFunction", "wallet_create.json")
    assert (status, wallet["owner_id"], wallet["currency"]) == (201, "user-1", "USD")
    status, listed = http("WalletListFunction", "wallet_list.json")
    assert status == 200
    assert {a, c, wallet["id"]} <= {item["id"] for item in listed["items"]}
    status, got = http("WalletGetFunction", "wallet_get.json")
    assert (status, got["id"], got["available"]) == (200, a, 500_000 - 3 * 40_000)
    status, history = http("WalletHistoryFunction", "wallet_history.json")
    assert (status, [item["id"] for item in history["items"]]) == (200, [credit.body["id"]])

    status, credited = http("CreditCreateFunction", "credit_create.json")
    assert (status, credited["kind"], credited["amount"]) == (201, "credit", 150_000)
    status, debited = http("DebitCreateFunction", "debit_create.json")
    assert (status, debited["kind"], debited["amount"]) == (201, "debit", 2_500)
    status, transfer = http("TransferCreateFunction", "transfer_create.json")
    assert (status, transfer["kind"], transfer["amount"]) == (201, "transfer", 1_000)
    status, fetched = http("TransactionGetFunction", "transaction_get.json")
    assert (status, fetched["id"]) == (200, credit.body["id"])
    status, reversal = http("ReversalCreateFunction", "reversal_create.json")
    assert (status, reversal["kind"], reversal["amount"]) == (201, "reversal", 500_000)

    assert http("WalletFreezeFunction", "wallet_freeze.json")[1]["status"] == "frozen"
    assert http("WalletUnfreezeFunction", "wallet_unfreeze.json")[1]["status"] == "active"
    status, closed = http("WalletCloseFunction", "wallet_close.json")
    assert (status, closed["id"], closed["status"]) == (200, c, "closed")

    assert api.credit(a, 100_000).status == 201  # the reversal took the first credit back
    status, created = http("HoldCreateFunction", "hold_create.json")
    assert (status, created["status"], created["amount"]) == (201, "active", 40_000)
    status, hold = http("HoldGetFunction", "hold_get.json", holds[0])
    assert (status, hold["id"]) == (200, holds[0])
    status, capture = http("HoldCaptureFunction", "hold_capture.json", holds[0])
    assert (status, capture["amount"]) == (201, 15_000)
    status, voided = http("HoldVoidFunction", "hold_void.json", holds[0])
    assert (status, voided["status"]) == (200, "voided")

    for sample, hold_id in [
        ("sqs_deposit_settled.json", None),
        ("sqs_withdrawal_settled.json", holds[1]),
        ("sqs_withdrawal_failed.json", holds[2]),
        ("sqs_balance_reported.json", None),
    ]:
        event = samples.load(sample, **ids, **({HOLD_H: hold_id} if hold_id else {}))
        assert host.invoke("IngestEventsFunction", event) == {"batchItemFailures": []}, sample
    mixed = samples.load("sqs_mixed_batch.json", **ids)
    not_yet = [r["messageId"] for r in mixed["Records"] if "not-opened-yet" in r["body"]]
    result = host.invoke("IngestEventsFunction", mixed)
    assert result == {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in not_yet]}
    statuses = dict(
        db.execute(
            "SELECT event_id, status FROM provider_events WHERE provider = %s", (samples.provider,)
        ).fetchall()
    )
    assert statuses == {
        "dep-0001": "applied",
        "wd-0001-settled": "applied",
        "wd-0002-failed": "applied",
        "bal-2026-11-22-1001": "applied",
        "dep-0002-invalid": "rejected",
    }

    status, snapshots = http("BalanceSnapshotListFunction", "balance_snapshot_list.json")
    assert (status, len(snapshots["items"])) == (200, 1)
    status, unresolved = http("UnresolvedSettlementListFunction", "unresolved_settlement_list.json")
    assert (status, type(unresolved["items"])) == (200, list)

    swept = host.invoke("HoldExpirySweepFunction", samples.load("hold_expiry_sweep.json"))
    assert set(swept) == {"wallets", "holds"}
