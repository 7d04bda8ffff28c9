"""Schemathesis hooks for `make fuzz` (loaded through SCHEMATHESIS_HOOKS=tools.fuzz_hooks).

Generated Idempotency-Key values repeat a lot (Hypothesis favours short strings and the document's
example), and a repeated key with a different body is, correctly, 422 idempotency_key_reused: most
generated commands never reached the ledger, and the stateful phase had no wallets to follow links
from. Every *valid* key is therefore made unique just before the call; invalid ones (negative
cases: empty, too long, control characters) are sent as generated. Replays are covered by
tests/integration/test_idempotency.py.
"""

from __future__ import annotations

import re
import uuid

import schemathesis

_VALID_KEY = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers
    if not headers:
        return
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and _VALID_KEY.match(value):
            headers[name] = f"fuzz-{uuid.uuid4()}"
