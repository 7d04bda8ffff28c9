"""Concurrency: random traffic from 8 threads and a two-wallet A<->B storm. No deadlock reaches a
client, and afterwards the ledger invariants hold exactly."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tests.conftest import ADMIN
from tests.support.threads import run_threads

EXPECTED_REJECTIONS = {"insufficient_funds"}

pytestmark = pytest.mark.slow


def test_random_transfers_debits_and_credits_keep_the_ledger_exact(api, db, invariants):
    wallets = [api.funded_wallet(5_000, ADMIN)["id"] for _ in range(10)]
    net_external = Counter()

    def work(index: int) -> list:
        rng = random.Random(index)
        results = []
        for _ in range(200):
            roll = rng.random()
            amount = rng.randint(1, 400)
            if roll < 0.6:
                source, destination = rng.sample(wallets, 2)
                result = api.transfer(source, destination, amount, claims=ADMIN)
                results.append(("transfer", result.status, result.code, None, 0))
            elif roll < 0.8:
                wallet = rng.choice(wallets)
                result = api.call(
                    "debit_create",
                    "POST",
                    f"/v1/wallets/{wallet}/debits",
                    claims=ADMIN,
                    body={"amount": amount},
                )
                results.append(("debit", result.status, result.code, wallet, -amount))
            else:
                wallet = rng.choice(wallets)
                result = api.credit(wallet, amount)
                results.append(("credit", result.status, result.code, wallet, amount))
        return results

    outcomes = run_threads(8, work)

    assert len(outcomes) == 8 * 200
    statuses = Counter((kind, status) for kind, status, *_ in outcomes)
    unexpected = [
        (kind, status, code)
        for kind, status, code, *_ in outcomes
        if status != 201 and code not in EXPECTED_REJECTIONS
    ]
    assert unexpected == []
    assert statuses[("transfer", 201)] > 100
    for _, status, _, wallet, delta in outcomes:
        if status == 201 and wallet:
            net_external[wallet] += delta
    total = sum(api.get_wallet(w)["balance"] for w in wallets)
    assert total == 10 * 5_000 + sum(net_external.values())
    assert invariants() == []


def test_an_a_to_b_and_b_to_a_storm_never_deadlocks_a_client(api, invariants):
    a = api.funded_wallet(100_000, ADMIN)["id"]
    b = api.funded_wallet(100_000, ADMIN)["id"]

    def work(index: int) -> list:
        source, destination = (a, b) if index % 2 else (b, a)
        return [api.transfer(source, destination, 7, claims=ADMIN).status for _ in range(100)]

    statuses = run_threads(8, work)

    assert statuses == [201] * 800
    balances = (api.get_wallet(a), api.get_wallet(b))
    assert balances[0]["balance"] + balances[1]["balance"] == 200_000
    assert balances[0]["version"] + balances[1]["version"] == 2 + 2 + 800 * 2
    assert invariants() == []
