"""Two functions' handlers running at once on threads of one process (the local runtime, the
concurrency tests) must each see their own event: Powertools keeps it on the BaseRouter class."""

from __future__ import annotations

import threading

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from tests.support.lambda_runtime import FakeLambdaContext, api_event
from tools.local_runtime.context import give_each_resolver_its_own_event


def test_a_resolver_keeps_its_event_while_another_one_resolves():
    give_each_resolver_its_own_event()
    first, second = APIGatewayHttpResolver(), APIGatewayHttpResolver()
    inside_first = threading.Event()
    second_done = threading.Event()
    seen: dict[str, str] = {}

    @first.post("/v1/transfers")
    def transfer():
        inside_first.set()
        assert second_done.wait(timeout=30)
        seen["first"] = first.current_event.body
        return {}

    @second.post("/v1/wallets/<wallet_id>/debits")
    def debit(wallet_id: str):
        seen["second"] = second.current_event.body
        return {}

    thread = threading.Thread(
        target=first.resolve,
        args=(api_event("POST", "/v1/transfers", body={"who": "transfer"}), FakeLambdaContext()),
    )
    thread.start()
    assert inside_first.wait(timeout=30)
    second.resolve(api_event("POST", "/v1/wallets/w/debits", body={"who": "debit"}), FakeLambdaContext())
    second_done.set()
    thread.join(timeout=30)

    assert seen == {"first": '{"who": "transfer"}', "second": '{"who": "debit"}'}


def test_patching_twice_wraps_once():
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

    give_each_resolver_its_own_event()
    patched = ApiGatewayResolver.resolve
    give_each_resolver_its_own_event()

    assert ApiGatewayResolver.resolve is patched
