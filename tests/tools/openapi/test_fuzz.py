"""`make fuzz` (tools/fuzz.py, tools/fuzz_hooks.py): the command it runs, the counts it prints, and
the hook that lets a linked transfer reach a wallet this run created."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from tools import fuzz, fuzz_hooks

ROOT = Path(__file__).resolve().parents[3]
A, B, C, D = (f"{n}0000000-0000-4000-8000-000000000000" for n in (1, 2, 3, 4))


def test_the_command_runs_every_phase_and_check_with_negative_data(tmp_path):
    command = fuzz.schemathesis_command(
        "http://127.0.0.1:1", "tok", tmp_path, examples=20, max_time=75, seed=7
    )

    assert command[command.index("--phases") + 1] == "examples,coverage,fuzzing,stateful"
    assert command[command.index("--mode") + 1] == "all"
    assert command[command.index("--checks") + 1].split(",") == list(fuzz.CHECKS)
    assert command[command.index("--seed") + 1] == "7"
    assert command[command.index("--config-file") + 1] == str(fuzz.CONFIG)
    assert "Authorization: Bearer tok" in command


def test_the_config_file_only_makes_linked_scenarios_valid():
    config = tomllib.loads(fuzz.CONFIG.read_text())

    assert config == {"phases": {"stateful": {"generation": {"mode": "positive"}}}}


def test_requests_are_counted_by_documented_operation(tmp_path):
    entries = [
        ("POST", "/v1/wallets"),
        ("GET", "/v1/wallets"),
        ("GET", f"/v1/wallets/{A}"),
        ("POST", f"/v1/wallets/{A}/credits"),
        ("TRACE", "/v1/wallets"),
    ]
    har = tmp_path / "report.har"
    har.write_text(
        json.dumps(
            {
                "log": {
                    "entries": [{"request": {"method": m, "url": f"http://h:1{p}?x=1"}} for m, p in entries]
                }
            }
        )
    )

    assert fuzz.requests_per_operation(har) == {
        "POST /v1/wallets": 1,
        "GET /v1/wallets": 1,
        "GET /v1/wallets/{wallet_id}": 1,
        "POST /v1/wallets/{wallet_id}/credits": 1,
        "TRACE (no documented operation)": 1,
    }


UNKNOWN, OTHER = "4f1c2b3a-0000-4000-8000-000000000000", "5f1c2b3a-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    ("change", "inactive", "expected"),
    [
        # Unknown source: the newest credited wallet; unknown destination: the newest other wallet.
        ({}, set(), {"source_wallet_id": B, "destination_wallet_id": D}),
        ({"destination_wallet_id": B}, set(), {"source_wallet_id": A}),
        ({"source_wallet_id": D}, set(), {"destination_wallet_id": B}),
        # At most what was credited, when the source was chosen; frozen or closed wallets are not chosen.
        ({"amount": 10**9}, set(), {"source_wallet_id": B, "destination_wallet_id": D, "amount": 100}),
        ({}, {B, D}, {"source_wallet_id": A}),
        # 2039.0 is an integer to JSON Schema, not to this API: sent as 2039 (then capped).
        ({"source_wallet_id": A, "destination_wallet_id": B, "amount": 7.0}, set(), {"amount": 7}),
        ({"amount": 2039.0}, set(), {"source_wallet_id": B, "destination_wallet_id": D, "amount": 100}),
        # Kept as generated: known wallets (of another currency too), nothing to pick, negative cases.
        ({"source_wallet_id": A, "destination_wallet_id": C}, set(), {}),
        ({"currency": "GBP"}, set(), {}),
        ({"source_wallet_id": "x", "destination_wallet_id": 5}, set(), {}),
        ({"currency": 5}, set(), {}),
    ],
)
def test_a_stateful_transfer_uses_wallets_this_run_created_and_credited(change, inactive, expected):
    wallets, funded = {"USD": [A, B, D], "EUR": [C]}, {"USD": [(A, 500), (B, 100)]}
    body = {
        "source_wallet_id": UNKNOWN,
        "destination_wallet_id": OTHER,
        "currency": "USD",
        "amount": 1,
        **change,
    }
    assert fuzz_hooks.stateful_transfer(body, wallets, funded, inactive) == expected
    assert fuzz_hooks.stateful_transfer([body], wallets, funded) == {}


def test_a_credit_links_to_what_needs_money():
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    links = document["paths"]["/v1/wallets/{wallet_id}/credits"]["post"]["responses"]["201"]["links"]

    assert links["TransferCredit"]["operationId"] == "createTransfer"
    assert links["TransferCredit"]["requestBody"] == {
        "source_wallet_id": "$response.body#/destination_wallet_id",
        "currency": "$response.body#/currency",
        "amount": "$response.body#/amount",
    }
    assert links["HoldCredit"]["requestBody"]["wallet_id"] == "$response.body#/destination_wallet_id"
    assert links["DebitCredit"]["parameters"] == {"wallet_id": "$response.body#/destination_wallet_id"}
