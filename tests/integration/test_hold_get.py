"""GET /v1/holds/{hold_id} (functions/hold_get): the route's own behaviour; what every route shares
(validation, edges, authorization, idempotency, concurrency) is tested by behaviour in the other files."""

from __future__ import annotations

from tests.conftest import ALICE, BOB


def test_only_admins_manage_holds_and_only_the_owner_or_an_admin_reads_one(api):
    wallet = api.funded_wallet(100, ALICE)
    hold = api.create_hold(wallet["id"], 10).body

    assert api.create_hold(wallet["id"], 10, claims=ALICE).code == "forbidden"
    assert api.capture_hold(hold["id"], claims=ALICE).code == "forbidden"
    assert api.void_hold(hold["id"], claims=ALICE).code == "forbidden"
    assert api.get_hold(hold["id"], claims=ALICE).status == 200
    assert (api.get_hold(hold["id"], claims=BOB).status, api.get_hold(hold["id"], claims=BOB).code) == (
        404,
        "not_found",
    )
    assert api.get_hold("00000000-0000-4000-8000-000000000000").status == 404
