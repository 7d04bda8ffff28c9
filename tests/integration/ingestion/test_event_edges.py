"""Provider events at the edge (contract v1.1 "Edges"): an event that breaks a rule the API
enforces can never apply; it is recorded as rejected with its reason, logged and acknowledged,
never retried into the dead-letter queue. Whatever is left for redelivery is logged with why."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BOB

NUL = "\x00"


def _rejections(caplog) -> list:
    return [r for r in caplog.records if r.getMessage() == "provider event rejected"]


@pytest.mark.parametrize(
    ("event_type", "fields", "field"),
    [
        ("deposit.settled", {"reference": f"ref{NUL}", "amount": 5, "currency": "USD"}, "reference"),
        ("deposit.settled", {"reference": "ref\x1b[31m", "amount": 5, "currency": "USD"}, "reference"),
        ("withdrawal.failed", {"reason": f"no{NUL}", "hold_id": "{hold}"}, "reason"),
        ("deposit.settled", {"amount": 5, "currency": "USD", f"x{NUL}": "y"}, "x"),
    ],
)
def test_an_event_with_control_characters_is_recorded_as_rejected_and_acknowledged(
    api, db, ingestion, recorded, caplog, event_type, fields, field
):
    wallet = api.create_wallet(BOB)
    fields = {k: (wallet["id"] if v == "{hold}" else v) for k, v in fields.items()}
    if event_type == "deposit.settled":
        fields["wallet_id"] = wallet["id"]
    body = ingestion.body(event_type, **fields)

    failures = ingestion.deliver(body)

    assert failures == []
    status, reason, transaction_id, _ = recorded(ingestion.provider, body["event_id"])
    assert status == "rejected"
    assert field in reason
    assert "control characters" in reason or "Extra inputs" in reason
    assert transaction_id is None
    assert [r.reason for r in _rejections(caplog)] == [reason]
    stored = db.execute(
        "SELECT payload FROM provider_events WHERE provider = %s AND event_id = %s",
        (ingestion.provider, body["event_id"]),
    ).fetchone()[0]
    assert NUL not in json.dumps(stored)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (
            '{{"event_id": "{id}", "provider": "{p}", "type": "deposit.settled", "amount": 5, "amount": 6}}',
            "same key",
        ),
        ('{{"event_id": "{id}", "provider": "{p}", "type": "deposit.settled", "amount": NaN}}', "NaN"),
        (
            '{{"event_id": "{id}", "provider": "{p}", "type": "deposit.settled", "amount": '
            + "9" * 5000
            + "}}",
            "digits",
        ),
        (
            '{{"event_id": "{id}", "provider": "{p}", "type": "deposit.settled", "note": "'
            + "n" * 70000
            + '"}}',
            "64 KiB",
        ),
    ],
)
def test_an_event_body_the_api_would_refuse_is_recorded_as_rejected(ingestion, recorded, raw, reason):
    event_id = f"evt-shape-{reason.replace(' ', '-')}"
    text = raw.format(id=event_id, p=ingestion.provider)

    failures = ingestion.deliver(text)

    assert failures == []
    status, stored_reason, _, _ = recorded(ingestion.provider, event_id)
    assert status == "rejected"
    assert reason in stored_reason


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"provider": f"acme{NUL}", "event_id": "e-1", "type": "deposit.settled"}),
        json.dumps({"provider": "acme", "event_id": f"e{NUL}1", "type": "deposit.settled"}),
        '{"provider": "acme", "event_id": "e-deep", "x": ' + "[" * 3000 + "]" * 3000 + "}",
    ],
)
def test_an_event_whose_key_cannot_be_stored_is_logged_and_acknowledged(db, ingestion, raw, caplog):
    before = db.execute("SELECT count(*) FROM provider_events").fetchone()[0]

    failures = ingestion.deliver(raw)

    assert failures == []
    assert db.execute("SELECT count(*) FROM provider_events").fetchone()[0] == before
    assert [r.levelname for r in caplog.records if "without a record" in r.getMessage()] == ["ERROR"]


def test_a_control_character_in_the_event_type_is_rejected_not_retried(ingestion, recorded):
    body = ingestion.body(f"deposit{NUL}settled", amount=5, currency="USD")

    failures = ingestion.deliver(body)

    assert failures == []
    assert recorded(ingestion.provider, body["event_id"])[0] == "rejected"


def test_a_record_left_for_redelivery_by_an_unexpected_failure_is_logged_with_its_reason(
    api, ingestion, monkeypatch, caplog
):
    from wallet_core.adapters.event_batches import EventBatchRepository

    wallet = api.create_wallet(BOB)
    body = ingestion.body("deposit.settled", wallet_id=wallet["id"], amount=1, currency="USD")

    def explode(self, *args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(EventBatchRepository, "apply", explode)

    assert len(ingestion.deliver(body)) == 1

    logged = [r for r in caplog.records if "left for redelivery" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].event_id == body["event_id"]
    assert "RuntimeError" in logged[0].reason
