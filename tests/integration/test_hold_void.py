"""POST /v1/holds/{hold_id}/void (functions/hold_void): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations


def test_void_releases_what_was_not_captured(api, invariants):
    wallet = api.funded_wallet(1_000)
    hold = api.create_hold(wallet["id"], 500).body
    api.capture_hold(hold["id"], amount=100)

    voided = api.void_hold(hold["id"])

    assert voided.status == 200, voided.body
    assert (voided.body["status"], voided.body["captured_amount"]) == ("voided", 100)
    after = api.get_wallet(wallet["id"])
    assert (after["balance"], after["held"], after["available"]) == (900, 0, 900)
    assert invariants() == []


def test_capture_after_void_and_void_after_full_capture_are_invalid_state(api):
    wallet = api.funded_wallet(1_000)
    voided = api.create_hold(wallet["id"], 100).body
    captured = api.create_hold(wallet["id"], 100).body
    api.void_hold(voided["id"])
    api.capture_hold(captured["id"])

    late_capture = api.capture_hold(voided["id"], amount=10)
    late_void = api.void_hold(captured["id"])
    second_void = api.void_hold(voided["id"])

    assert (late_capture.status, late_capture.code) == (409, "invalid_state")
    assert (late_void.status, late_void.code) == (409, "invalid_state")
    assert second_void.code == "invalid_state"
