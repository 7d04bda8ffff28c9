"""The sample events in events/ drive the hold routes end to end (create, get, capture, void).
(Each route's tests: test_<route module>.py.)"""

from __future__ import annotations


def test_the_sample_events_drive_the_hold_routes(api, db):
    from tests.support.lambda_runtime import FakeLambdaContext, load_handler, parse_result, sample_event

    wallet = api.funded_wallet(100_000)
    create = sample_event("hold_create")
    create["body"] = create["body"].replace("3f2b6c1e-8a4d-4f7b-9c2e-5d1a0b7e6f41", wallet["id"])
    create["headers"]["idempotency-key"] = f"sample-{wallet['id']}"

    made = parse_result(load_handler("functions/hold_create")(create, FakeLambdaContext()))
    assert made.status == 201, made.body
    results = {}
    for name in ("hold_get", "hold_capture", "hold_void"):
        event = sample_event(name)
        sample_id = event["pathParameters"]["hold_id"]
        event["rawPath"] = event["rawPath"].replace(sample_id, made.body["id"])
        event["requestContext"]["http"]["path"] = event["rawPath"]
        if "idempotency-key" in event["headers"]:
            event["headers"]["idempotency-key"] += wallet["id"]
        results[name] = parse_result(load_handler(f"functions/{name}")(event, FakeLambdaContext()))

    assert results["hold_get"].body["amount"] == 40_000
    assert (results["hold_capture"].status, results["hold_capture"].body["amount"]) == (201, 15_000)
    assert (results["hold_void"].status, results["hold_void"].body["status"]) == (200, "voided")
    assert api.get_wallet(wallet["id"])["balance"] == 85_000
