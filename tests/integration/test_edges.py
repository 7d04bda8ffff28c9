"""The edges of the API (contract v1.1 "Edges"): whatever a client sends, the answer is a 4xx
problem, never a 5xx. One test per class of input, through the real handlers."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from tests.conftest import ADMIN, ALICE
from tests.support.lambda_runtime import FakeLambdaContext, api_event, load_handler, parse_result


def invoke(function: str, event: dict):
    handler = load_handler(f"functions/{function}")
    return parse_result(handler(event, FakeLambdaContext(function_name=function)))


def credit_event(wallet_id: str, **changes) -> dict:
    event = api_event(
        "POST",
        f"/v1/wallets/{wallet_id}/credits",
        body={"amount": 5},
        claims=ADMIN,
        idempotency_key=str(uuid.uuid4()),
    )
    event.update(changes)
    return event


@pytest.fixture
def wallet(api):
    return api.create_wallet(ALICE)


def _counts(db):
    return tuple(
        db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("transactions", "entries", "idempotency_keys")
    )


# Media type ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        "application/octet-stream",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/json-patch+json",
        "application/json; charset=latin-1",
        "application/json; version=2",
        "",
    ],
)
def test_a_body_in_any_other_media_type_is_415(api, db, wallet, content_type):
    before = _counts(db)

    result = api.call(
        "credit_create",
        "POST",
        f"/v1/wallets/{wallet['id']}/credits",
        claims=ADMIN,
        raw_body='{"amount": 5}',
        headers={"Content-Type": content_type},
    )

    assert (result.status, result.code) == (415, "unsupported_media_type")
    assert result.headers["content-type"] == "application/problem+json"
    assert _counts(db) == before


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "APPLICATION/JSON",
        "application/json; charset=utf-8",
        'Application/Json;Charset="UTF-8"',
    ],
)
def test_json_is_recognised_case_insensitively_with_an_optional_utf8_charset(api, wallet, content_type):
    result = api.call(
        "credit_create",
        "POST",
        f"/v1/wallets/{wallet['id']}/credits",
        claims=ADMIN,
        raw_body='{"amount": 5}',
        headers={"Content-Type": content_type},
    )

    assert result.status == 201, result.body


def test_a_route_that_takes_a_body_answers_415_for_another_media_type_even_when_empty(api, wallet):
    result = api.call(
        "credit_create",
        "POST",
        f"/v1/wallets/{wallet['id']}/credits",
        claims=ADMIN,
        headers={"Content-Type": "text/plain"},
    )

    assert (result.status, result.code) == (415, "unsupported_media_type")


def test_a_bodiless_post_ignores_the_media_type_of_an_empty_body(api, wallet):
    result = api.call(
        "wallet_freeze",
        "POST",
        f"/v1/wallets/{wallet['id']}/freeze",
        claims=ADMIN,
        headers={"Content-Type": "text/plain"},
    )

    assert result.status == 200, result.body


def test_a_bodiless_post_with_a_body_in_another_media_type_is_415(api, wallet):
    result = api.call(
        "wallet_freeze",
        "POST",
        f"/v1/wallets/{wallet['id']}/freeze",
        claims=ADMIN,
        raw_body="freeze please",
        headers={"Content-Type": "text/plain"},
    )

    assert (result.status, result.code) == (415, "unsupported_media_type")


def test_a_get_ignores_a_body_whatever_its_media_type(api, wallet):
    result = api.call(
        "wallet_get",
        "GET",
        f"/v1/wallets/{wallet['id']}",
        claims=ALICE,
        raw_body="[" * 5000,
        headers={"Content-Type": "text/plain"},
    )

    assert result.status == 200, result.body


# Size and shape -----------------------------------------------------------------------------------


def test_a_body_above_64_kib_is_413(api, db, wallet):
    before = _counts(db)
    raw = '{"amount": 5, "description": "' + "d" * (64 * 1024) + '"}'

    result = api.call(
        "credit_create", "POST", f"/v1/wallets/{wallet['id']}/credits", claims=ADMIN, raw_body=raw
    )

    assert (result.status, result.code) == (413, "payload_too_large")
    assert _counts(db) == before


def test_a_body_of_exactly_64_kib_is_read(api, wallet):
    raw = '{"amount": 5, "colour": "' + "c" * (64 * 1024 - 27) + '"}'
    assert len(raw.encode()) == 64 * 1024

    result = api.call(
        "credit_create", "POST", f"/v1/wallets/{wallet['id']}/credits", claims=ADMIN, raw_body=raw
    )

    assert (result.status, result.code) == (400, "validation_error")
    assert result.body["errors"][0]["field"] == "colour"


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{}",
        '{"amount": 5, "reference": "caf\u00e9"}'.encode("latin-1"),
        b'{"amount": 5, "reference": "\xed\xa0\x80"}',
    ],
)
def test_a_base64_body_that_is_not_utf8_is_a_validation_error(wallet, raw):
    event = credit_event(wallet["id"], body=base64.b64encode(raw).decode(), isBase64Encoded=True)

    result = invoke("credit_create", event)

    assert (result.status, result.code) == (400, "validation_error")
    assert result.body["errors"][0]["field"] == "body"


def test_a_base64_body_that_is_utf8_json_is_read(wallet):
    event = credit_event(wallet["id"], body=base64.b64encode(b'{"amount": 7}').decode(), isBase64Encoded=True)

    result = invoke("credit_create", event)

    assert (result.status, result.body["amount"]) == (201, 7)


def test_a_body_that_is_not_base64_though_flagged_so_is_a_validation_error(wallet):
    event = credit_event(wallet["id"], body="not base64 at all!", isBase64Encoded=True)

    result = invoke("credit_create", event)

    assert (result.status, result.code) == (400, "validation_error")


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ('{"amount": 5, "metadata": ' + '{"a": ' * 40 + '"x"' + "}" * 40 + "}", "deep"),
        ("[" * 2000 + "]" * 2000, "deep"),
        ('{"amount": ' + "9" * 21 + "}", "digits"),
        ('{"amount": ' + "1" * 5000 + "}", "digits"),
        ('{"amount": 1.' + "5" * 30 + "}", "digits"),
        ('{"amount": 5, "amount": 6}', "duplicate"),
        ('{"amount": NaN}', "constant"),
        ('{"amount": Infinity}', "constant"),
        ('{"amount": -Infinity}', "constant"),
    ],
)
def test_hostile_json_shapes_are_validation_errors(api, db, wallet, raw, why):
    before = _counts(db)

    result = api.call(
        "credit_create", "POST", f"/v1/wallets/{wallet['id']}/credits", claims=ADMIN, raw_body=raw
    )

    assert (result.status, result.code) == (400, "validation_error"), why
    assert result.body["errors"][0]["field"] == "body"
    assert _counts(db) == before


def test_a_deeply_nested_body_on_a_bodiless_route_is_a_validation_error(api, wallet):
    result = api.call(
        "wallet_freeze",
        "POST",
        f"/v1/wallets/{wallet['id']}/freeze",
        claims=ADMIN,
        raw_body="[" * 5000 + "]" * 5000,
    )

    assert (result.status, result.code) == (400, "validation_error")


def test_32_levels_of_nesting_are_still_parsed(api, wallet):
    raw = '{"amount": 5, "metadata": ' + "[" * 31 + "]" * 31 + "}"

    result = api.call(
        "credit_create", "POST", f"/v1/wallets/{wallet['id']}/credits", claims=ADMIN, raw_body=raw
    )

    # Parsed (depth 32) and then refused by the schema: metadata is an object of strings.
    assert (result.status, result.code) == (400, "validation_error")
    assert result.body["errors"][0]["field"] == "metadata"


# Text -----------------------------------------------------------------------------------------------

CONTROL = ["\x00", "\x01", "\x1b", "\x1f", "\ud800"]


@pytest.mark.parametrize("char", CONTROL)
@pytest.mark.parametrize(
    ("function", "field", "body"),
    [
        ("transfer_create", "reference", {"reference": "r{c}"}),
        ("transfer_create", "description", {"description": "d{c}"}),
        ("transfer_create", "metadata.k", {"metadata": {"k": "v{c}"}}),
        ("transfer_create", "metadata", {"metadata": {"k{c}": "v"}}),
        ("wallet_create", "external_ref", {"external_ref": "ext{c}"}),
        ("wallet_create", "owner_id", {"owner_id": "own{c}"}),
        ("hold_create", "reference", {"reference": "h{c}"}),
        ("reversal_create", "reason", {"reason": "why{c}"}),
    ],
)
def test_control_characters_in_any_text_field_are_a_validation_error_naming_it(
    api, db, function, field, body, char
):
    source = api.funded_wallet(100, ALICE)
    destination = api.create_wallet(ADMIN)
    credit = api.credit(source["id"], 1).body
    bodies = {
        "transfer_create": (
            "/v1/transfers",
            {
                "source_wallet_id": source["id"],
                "destination_wallet_id": destination["id"],
                "amount": 1,
                "currency": "USD",
            },
        ),
        "wallet_create": ("/v1/wallets", {"currency": "USD"}),
        "hold_create": ("/v1/holds", {"wallet_id": source["id"], "amount": 1}),
        "reversal_create": (f"/v1/transactions/{credit['id']}/reversals", {}),
    }
    path, base = bodies[function]
    filled = json.loads(json.dumps(body).replace("{c}", json.dumps(char)[1:-1]))
    before = _counts(db)

    result = api.call(function, "POST", path, claims=ADMIN, raw_body=json.dumps({**base, **filled}))

    assert (result.status, result.code) == (400, "validation_error"), result.body
    assert any(e["field"].startswith(field) for e in result.body["errors"]), result.body
    assert _counts(db) == before


@pytest.mark.parametrize("char", ["\t", "\r", "\n"])
def test_tab_cr_and_lf_are_allowed_in_text(api, wallet, char):
    result = api.call(
        "credit_create",
        "POST",
        f"/v1/wallets/{wallet['id']}/credits",
        claims=ADMIN,
        body={"amount": 5, "description": f"line one{char}line two", "metadata": {"k": f"a{char}b"}},
    )

    assert result.status == 201, result.body
    assert result.body["description"] == f"line one{char}line two"


@pytest.mark.parametrize(
    ("function", "path", "name"),
    [
        ("wallet_list", "/v1/wallets", "owner_id"),
        ("wallet_list", "/v1/wallets", "cursor"),
        ("wallet_list", "/v1/wallets", "limit"),
        ("wallet_history", "/v1/wallets/{wallet}/transactions", "cursor"),
        ("balance_snapshot_list", "/v1/wallets/{wallet}/balance-snapshots", "cursor"),
    ],
)
def test_control_characters_in_a_query_parameter_are_a_validation_error_naming_it(
    api, wallet, function, path, name
):
    result = api.call(function, "GET", path.format(wallet=wallet["id"]), claims=ADMIN, query={name: "a\x00b"})

    assert (result.status, result.code) == (400, "validation_error")
    assert result.body["errors"][0]["field"] == name


@pytest.mark.parametrize("key", ["key\x00", "k\x01y", "k\ud800"])
def test_control_characters_in_the_idempotency_key_are_a_validation_error(api, db, wallet, key):
    before = _counts(db)

    result = api.call(
        "credit_create",
        "POST",
        f"/v1/wallets/{wallet['id']}/credits",
        claims=ADMIN,
        body={"amount": 5},
        key=key,
    )

    assert (result.status, result.code) == (400, "validation_error")
    assert result.body["errors"][0]["field"] == "Idempotency-Key"
    assert _counts(db) == before


# Cursors --------------------------------------------------------------------------------------------


def _cursor(position) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


@pytest.fixture
def pages(api):
    """A wallet list and a history with more than one page each: real cursors to alter."""
    owner = {"sub": f"pager-{uuid.uuid4()}", "scope": "wallet:read"}
    wallets = [api.create_wallet(owner) for _ in range(3)]
    for _ in range(3):
        assert api.credit(wallets[0]["id"], 1).status == 201
    listing = api.call("wallet_list", "GET", "/v1/wallets", claims=owner, query={"limit": "1"})
    history = api.call(
        "wallet_history",
        "GET",
        f"/v1/wallets/{wallets[0]['id']}/transactions",
        claims=owner,
        query={"limit": "1"},
    )
    return owner, wallets[0]["id"], listing.body["next_cursor"], history.body["next_cursor"]


def _forgeries(issued: str) -> list[str]:
    return [
        issued[:-2],
        issued[:-1] + ("A" if issued[-1] != "A" else "B"),
        issued + "AAAA",
        "!!!",
        _cursor([99999999999999999999999]),
        _cursor([-1]),
        _cursor([0]),
        _cursor([True]),
        _cursor([1.5]),
        _cursor(["1"]),
        _cursor([None]),
        _cursor({"a": 1}),
        _cursor(["2026-01-01T00:00:00", str(uuid.uuid4())]),  # no time zone
        _cursor(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
        _cursor(["0001-01-01T00:00:00+05:00", str(uuid.uuid4())]),
        _cursor([True, str(uuid.uuid4())]),
        _cursor(["x" * 40, str(uuid.uuid4())]),
        _cursor([1, 2, 3]),
        base64.urlsafe_b64encode(b"[1]   ").decode(),
    ]


def test_a_cursor_the_server_did_not_issue_is_a_validation_error_on_every_list(api, pages):
    owner, wallet_id, list_cursor, history_cursor = pages
    lists = [
        ("wallet_list", "/v1/wallets", owner, list_cursor, history_cursor),
        ("wallet_history", f"/v1/wallets/{wallet_id}/transactions", owner, history_cursor, list_cursor),
        (
            "balance_snapshot_list",
            f"/v1/wallets/{wallet_id}/balance-snapshots",
            ADMIN,
            list_cursor,
            history_cursor,
        ),
    ]
    answers = []
    for function, path, claims, issued, foreign in lists:
        assert api.call(function, "GET", path, claims=claims, query={"cursor": issued}).status == 200
        for forged in [*_forgeries(issued), foreign]:
            result = api.call(function, "GET", path, claims=claims, query={"cursor": forged})
            fields = (
                [e["field"] for e in result.body.get("errors", [])] if isinstance(result.body, dict) else []
            )
            answers.append((function, forged, result.status, result.code, fields))

    wrong = [a for a in answers if a[2:] != (400, "validation_error", ["cursor"])]
    assert not wrong, wrong


# Created resources, support -------------------------------------------------------------------------


def test_every_201_carries_the_location_of_the_new_resource(api):
    wallet = api.call("wallet_create", "POST", "/v1/wallets", claims=ADMIN, body={"currency": "USD"})
    other = api.create_wallet(ADMIN)
    wid = wallet.body["id"]
    credit = api.credit(wid, 100)
    debit = api.call("debit_create", "POST", f"/v1/wallets/{wid}/debits", claims=ADMIN, body={"amount": 1})
    transfer = api.transfer(wid, other["id"], 1)
    reversal = api.call(
        "reversal_create", "POST", f"/v1/transactions/{transfer.body['id']}/reversals", claims=ADMIN
    )
    hold = api.create_hold(wid, 10)
    capture = api.capture_hold(hold.body["id"], amount=1)

    for result, collection in [
        (wallet, "wallets"),
        (credit, "transactions"),
        (debit, "transactions"),
        (transfer, "transactions"),
        (reversal, "transactions"),
        (hold, "holds"),
        (capture, "transactions"),
    ]:
        assert result.status == 201, result.body
        assert result.headers.get("location") == f"/v1/{collection}/{result.body['id']}"


def test_a_replayed_201_carries_the_same_location(api, wallet):
    key = str(uuid.uuid4())
    path = f"/v1/wallets/{wallet['id']}/credits"
    first = api.call("credit_create", "POST", path, claims=ADMIN, body={"amount": 5}, key=key)
    again = api.call("credit_create", "POST", path, claims=ADMIN, body={"amount": 5}, key=key)

    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"] == f"/v1/transactions/{first.body['id']}"


def test_every_problem_body_carries_the_request_id(wallet):
    events = [
        credit_event(wallet["id"], body='{"amount": 0}'),  # validation
        credit_event(wallet["id"], body="{}", headers={"content-type": "text/plain", "idempotency-key": "k"}),
        credit_event(wallet["id"], body='{"amount": 5, "description": "' + "x" * 70000 + '"}'),
        credit_event(str(uuid.uuid4())),  # not found, a stored rejection
        credit_event(wallet["id"], headers={"content-type": "application/json"}),  # no key
    ]
    for event in events:
        result = invoke("credit_create", event)
        assert result.status >= 400, result.body
        assert result.body["request_id"] == event["requestContext"]["requestId"], result.body


def test_the_local_runtimes_problem_for_an_unmatched_route_in_a_function_is_a_problem(wallet):
    event = api_event("GET", "/v1/nowhere", claims=ADMIN)

    result = invoke("wallet_get", event)

    assert (result.status, result.code) == (404, "not_found")
    assert result.body["request_id"] == event["requestContext"]["requestId"]


# Metrics for the deployment alarms -----------------------------------------------------------------


def _emf(output: str) -> list[dict]:
    found = []
    for line in output.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            found.append(document)
    return found


@pytest.mark.parametrize(
    ("raised", "status", "code"),
    [(RuntimeError("a bug"), 500, "internal_error"), (None, 503, "service_unavailable")],
)
def test_every_5xx_emits_one_handled_server_error_metric(
    api, wallet, monkeypatch, capsys, raised, status, code
):
    from wallet_core.domain import errors
    from wallet_core.service import wallets

    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Wallet/test-stack")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "wallet")
    error = raised or errors.ServiceUnavailableError()

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(wallets, "get_wallet", fail)
    capsys.readouterr()

    result = api.call("wallet_get", "GET", f"/v1/wallets/{wallet['id']}", claims=ALICE)

    assert (result.status, result.code) == (status, code)
    metrics = [m for m in _emf(capsys.readouterr().out) if "HandledServerErrors" in m]
    assert len(metrics) == 1, metrics
    metric = metrics[0]
    directive = metric["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Wallet/test-stack"
    assert directive["Dimensions"] == [["service", "function_name"]] or sorted(
        directive["Dimensions"][0]
    ) == [
        "function_name",
        "service",
    ]
    assert directive["Metrics"] == [{"Name": "HandledServerErrors", "Unit": "Count"}]
    assert metric["HandledServerErrors"] in (1.0, [1.0])
    assert (metric["service"], metric["function_name"]) == ("wallet", "wallet_get")


def test_a_4xx_emits_no_server_error_metric(api, monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Wallet/test-stack")
    capsys.readouterr()

    result = api.call("wallet_get", "GET", f"/v1/wallets/{uuid.uuid4()}", claims=ALICE)

    assert result.status == 404
    assert not [m for m in _emf(capsys.readouterr().out) if "HandledServerErrors" in m]
