"""Holds under concurrency: racing captures and voids on one hold, and 8 threads of mixed
hold/capture/void/transfer traffic. Afterwards held and available are exact."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from tests.conftest import ADMIN
from tests.support.threads import run_threads

pytestmark = pytest.mark.slow

# Outcomes a racing request may legitimately meet; anything else (500, deadlock, 503) fails.
EXPECTED = {
    None,
    "insufficient_funds",
    "invalid_state",
    "amount_exceeds_hold",
}


def test_racing_captures_and_voids_never_take_more_than_the_hold(api, db, invariants):
    for _ in range(5):  # several rounds: each race resolves differently
        wallet = api.funded_wallet(10_000)
        hold = api.create_hold(wallet["id"], 1_000).body

        def work(index: int, hold_id=hold["id"]) -> list:
            if index == 7:
                result = api.void_hold(hold_id)
                return [("void", result.status, result.code)]
            result = api.capture_hold(hold_id, amount=300)
            return [("capture", result.status, result.code)]

        outcomes = run_threads(8, work)

        assert {code for *_, code in outcomes} <= EXPECTED, outcomes
        captures = [o for o in outcomes if o[0] == "capture" and o[1] == 201]
        captured, status = db.execute(
            "SELECT captured_amount, status FROM holds WHERE id = %s", (hold["id"],)
        ).fetchone()
        assert captured == 300 * len(captures) <= 1_000
        assert len(captures) <= 3
        after = api.get_wallet(wallet["id"])
        assert after["balance"] == 10_000 - captured
        assert after["held"] == (1_000 - captured if status == "active" else 0)
    assert invariants() == []


def test_mixed_hold_and_transfer_traffic_keeps_held_and_available_exact(api, db, invariants):
    wallets = [api.funded_wallet(5_000, ADMIN)["id"] for _ in range(6)]
    external = Counter()  # money that left the ledger through captures, per wallet
    lock = threading.Lock()

    def work(index: int) -> list:
        rng = random.Random(index)
        mine: list[tuple[str, str]] = []  # (hold, its wallet) this thread created
        results = []
        for _ in range(60):
            roll = rng.random()
            wallet = rng.choice(wallets)
            if roll < 0.3 or not mine:
                result = api.create_hold(wallet, rng.randint(1, 600))
                if result.status == 201:
                    mine.append((result.body["id"], wallet))
                results.append(("hold", result.status, result.code))
            elif roll < 0.5:
                hold_id, held_wallet = rng.choice(mine)
                destination = rng.choice([None, rng.choice([w for w in wallets if w != held_wallet])])
                body = {"amount": rng.randint(1, 300)}
                if destination:
                    body["destination_wallet_id"] = destination
                result = api.capture_hold(hold_id, **body)
                if result.status == 201 and result.body["destination_wallet_id"] is None:
                    with lock:
                        external[result.body["source_wallet_id"]] += result.body["amount"]
                results.append(("capture", result.status, result.code))
            elif roll < 0.6:
                result = api.void_hold(rng.choice(mine)[0])
                results.append(("void", result.status, result.code))
            else:
                source, destination = rng.sample(wallets, 2)
                result = api.transfer(source, destination, rng.randint(1, 400), claims=ADMIN)
                results.append(("transfer", result.status, result.code))
        return results

    outcomes = run_threads(8, work)

    assert len(outcomes) == 8 * 60
    unexpected = [outcome for outcome in outcomes if outcome[2] not in EXPECTED]
    assert unexpected == []
    assert Counter(kind for kind, status, _ in outcomes if status in (200, 201))["capture"] > 0
    assert invariants() == []
    states = [api.get_wallet(wallet_id) for wallet_id in wallets]
    for state in states:
        active = db.execute(
            "SELECT coalesce(sum(amount - captured_amount), 0) FROM holds"
            " WHERE wallet_id = %s AND status = 'active' AND expires_at > now()",
            (state["id"],),
        ).fetchone()[0]
        assert state["held"] == active
        assert state["available"] == state["balance"] - state["held"] >= 0
    assert sum(state["balance"] for state in states) == 6 * 5_000 - sum(external.values())
