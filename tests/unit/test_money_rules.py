"""Money-safety rules that need no database: claims become a principal only when the service can
store and trust them, and no posting may carry a balance past the ceiling."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from wallet_core.domain import errors
from wallet_core.domain.models import NewTransaction, TransactionKind, Wallet, WalletStatus
from wallet_core.domain.money import MAX_BALANCE
from wallet_core.http.auth import principal_from_event
from wallet_core.service import ledger


def _event(claims: dict) -> dict:
    return {"requestContext": {"authorizer": {"jwt": {"claims": claims}}}}


@pytest.mark.parametrize(
    ("scope", "admin"),
    [
        ("wallet:read wallet:admin", True),
        ("[wallet:read wallet:admin]", True),
        (["wallet:read", "wallet:admin"], True),
        ("wallet:read,wallet:admin", False),
        ("[wallet:read,wallet:admin]", False),
        (["wallet:read,wallet:admin"], False),
        ("wallet:admin2", False),
        ("", False),
    ],
)
def test_a_scope_is_a_space_separated_list(scope, admin):
    assert principal_from_event(_event({"sub": "a", "scope": scope})).is_admin is admin


@pytest.mark.parametrize(
    "subject",
    ["", "x" * 256, "a\x00b", "a\tb", "a\nb", "a\x1fb", "a\x7fb", "a\x85b", "\udc80", 42, None],
)
def test_a_subject_the_service_cannot_store_is_unauthorized(subject):
    with pytest.raises(errors.UnauthorizedError, match="subject"):
        principal_from_event(_event({"sub": subject, "scope": "wallet:admin"}))


@pytest.mark.parametrize("subject", ["a", "x" * 255, "auth0|5fe435b5cbbc", "Zoë Ünïcode ✓", "a b"])
def test_ordinary_subjects_are_accepted_as_they_are(subject):
    assert principal_from_event(_event({"sub": subject})).subject == subject


def _wallet(balance: int) -> Wallet:
    now = datetime.now(UTC)
    return Wallet(uuid.uuid4(), "o", "USD", WalletStatus.ACTIVE, balance, 0, 1, None, {}, now, now)


class _RefusingLedger:
    def post(self, new, postings):  # pragma: no cover - reaching it is the failure
        raise AssertionError("nothing may be written past the ceiling")


class _Uow:
    ledger = _RefusingLedger()


@pytest.mark.parametrize(("balance", "amount"), [(MAX_BALANCE, 1), (2**63 - 5, 10), (0, MAX_BALANCE + 1)])
def test_no_posting_takes_a_balance_past_the_ceiling_and_nothing_is_applied(balance, amount):
    receiver, payer = _wallet(balance), _wallet(amount)
    new = NewTransaction(TransactionKind.TRANSFER, amount, "USD", payer.id, receiver.id)

    with pytest.raises(errors.BalanceLimitExceededError):
        ledger.post(_Uow(), new, [(payer, -amount), (receiver, amount)])

    assert (payer.balance, payer.version) == (amount, 1)
    assert (receiver.balance, receiver.version) == (balance, 1)


def test_balance_limit_exceeded_is_a_422():
    from wallet_core.http.problems import problem_for

    status, _ = problem_for(errors.BalanceLimitExceededError())

    assert status == 422
    assert errors.BalanceLimitExceededError.code == "balance_limit_exceeded"


def _route_event(claims: dict | None, body: str) -> dict:
    from tests.support.lambda_runtime import api_event

    return api_event("POST", "/v1/things", raw_body=body, claims=claims)


class ThingRequest(BaseModel):
    amount: int


def _resolver_with_a_validated_body(admin_only: bool):
    from wallet_core.http.api import create_app

    app = create_app(admin_only=admin_only)
    calls: list[int] = []

    @app.post("/v1/things")
    def thing(body: ThingRequest):
        calls.append(body.amount)
        return {"ok": True}

    return app, calls


def test_an_admin_only_app_answers_403_before_powertools_validates_the_body():
    from tests.support.lambda_runtime import FakeLambdaContext

    app, calls = _resolver_with_a_validated_body(admin_only=True)
    user = {"sub": "u", "scope": "wallet:read"}

    forbidden = app.resolve(_route_event(user, "{not json"), FakeLambdaContext())
    anonymous = app.resolve(_route_event(None, "{not json"), FakeLambdaContext())
    admin = app.resolve(
        _route_event({"sub": "o", "scope": "wallet:admin"}, '{"amount": 3}'), FakeLambdaContext()
    )

    assert forbidden["statusCode"] == 403
    assert json.loads(forbidden["body"])["code"] == "forbidden"
    assert anonymous["statusCode"] == 401
    assert admin["statusCode"] == 200
    assert calls == [3]


def test_other_apps_validate_first_as_before():
    from tests.support.lambda_runtime import FakeLambdaContext

    app, calls = _resolver_with_a_validated_body(admin_only=False)

    result = app.resolve(_route_event({"sub": "u"}, "{not json"), FakeLambdaContext())

    assert result["statusCode"] == 400
    assert calls == []
