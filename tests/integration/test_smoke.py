from tests.conftest import ALICE, BOB


def test_transfer_moves_money_between_wallets(api, invariants):
    source = api.funded_wallet(1_000, ALICE)
    destination = api.create_wallet(BOB)

    result = api.transfer(source["id"], destination["id"], 300, claims=ALICE)

    assert result.status == 201, result.body
    assert api.get_wallet(source["id"])["balance"] == 700
    assert api.get_wallet(destination["id"])["balance"] == 300
    assert invariants() == []
