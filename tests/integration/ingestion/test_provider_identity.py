"""Who a provider is: a configured, normalised name (WALLET_PROVIDERS), optionally bound to the queue
(WALLET_BOUND_PROVIDER); anything else is rejected with a logged reason and acknowledged."""

from __future__ import annotations

import pytest

from tests.conftest import BOB


@pytest.fixture
def providers(monkeypatch):
    """Given step: the accepted providers (and the queue's bound provider) of this container."""
    from wallet_core.config import get_settings

    def configure(accepted: str, bound: str | None = None) -> None:
        monkeypatch.setenv("WALLET_PROVIDERS", accepted)
        if bound is None:
            monkeypatch.delenv("WALLET_BOUND_PROVIDER", raising=False)
        else:
            monkeypatch.setenv("WALLET_BOUND_PROVIDER", bound)
        get_settings.cache_clear()

    yield configure
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_same_event_sent_with_another_case_applies_once(api, db, ingestion, providers):
    providers(f" {ingestion.provider.upper()} ,other-bank")
    wallet = api.create_wallet(BOB)
    body = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=1_000, currency="USD")
    shouting = {**body, "provider": f"  {ingestion.provider.upper()} "}

    assert ingestion.deliver(body) == []
    assert ingestion.deliver(shouting) == []

    assert api.get_wallet(wallet["id"])["balance"] == 1_000
    rows = db.execute(
        "SELECT provider, status FROM provider_events WHERE event_id = %s", (body["event_id"],)
    ).fetchall()
    assert rows == [(ingestion.provider, "applied")]


def test_an_unknown_provider_is_rejected_with_a_logged_reason(api, ingestion, recorded, providers, caplog):
    providers("acme-pay")
    wallet = api.create_wallet(BOB)
    body = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=1_000, currency="USD")

    assert ingestion.deliver(body) == []

    status, reason, transaction_id, _ = recorded(ingestion.provider, body["event_id"])
    assert (status, transaction_id) == ("rejected", None)
    assert reason.startswith("unknown_provider")
    assert api.get_wallet(wallet["id"])["balance"] == 0
    logged = [r for r in caplog.records if r.getMessage() == "provider event rejected"]
    assert [r.reason for r in logged] == [reason]


def test_on_a_bound_queue_an_event_naming_another_provider_is_rejected(api, ingestion, recorded, providers):
    providers(f"{ingestion.provider},acme-pay", bound="acme-pay")
    wallet = api.create_wallet(BOB)
    body = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=1_000, currency="USD")

    assert ingestion.deliver(body) == []

    assert api.get_wallet(wallet["id"])["balance"] == 0
    # Recorded in the sender's own key space: it cannot pre-empt the named provider's real event.
    assert recorded(ingestion.provider, body["event_id"]) is None
    status, reason, _, _ = recorded("acme-pay", body["event_id"])
    assert status == "rejected"
    assert reason.startswith("provider_mismatch")


def test_on_a_bound_queue_the_bound_provider_applies(api, ingestion, providers):
    providers("acme-pay", bound=f" {ingestion.provider.upper()}")
    wallet = api.create_wallet(BOB)
    body = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=50, currency="USD")

    assert ingestion.deliver(body) == []

    assert api.get_wallet(wallet["id"])["balance"] == 50


def test_the_default_provider_list_is_acme_pay():
    from wallet_core.config import Settings

    assert Settings.from_environment({}).wallet_providers == frozenset({"acme-pay"})
    assert Settings.from_environment({"WALLET_PROVIDERS": " Acme-Pay , , B "}).wallet_providers == frozenset(
        {"acme-pay", "b"}
    )
