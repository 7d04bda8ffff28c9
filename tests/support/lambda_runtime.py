"""Invoke the real handlers the way Lambda does: by file, with an API Gateway v2 event and a context."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.local_runtime.context import give_each_resolver_its_own_event

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


@dataclass
class FakeLambdaContext:
    function_name: str = "wallet-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/wallet-test"
    log_stream_name: str = "test"
    timeout_seconds: float = 15.0
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000)


_import_lock = threading.Lock()


def load_handler(code_dir: str, handler: str = "app.handler"):
    """Import `<code_dir>/<module>.py` under a unique name (every function's module is app.py).

    Each thread gets its own copy, as concurrent Lambda invocations each run in their own
    container: handler modules keep per-invocation state (Powertools' resolver holds the current
    event on the class, see give_each_resolver_its_own_event), which Lambda never shares between
    concurrent requests and neither do we."""
    give_each_resolver_its_own_event()
    module_name, function_name = handler.rsplit(".", 1)
    path = ROOT / code_dir / f"{module_name}.py"
    container = "" if threading.current_thread() is threading.main_thread() else f"_t{threading.get_ident()}"
    unique = "lambda_" + code_dir.strip("/").replace("/", "_") + "_" + module_name + container
    with _import_lock:  # threads must not see a half-executed module
        module = sys.modules.get(unique)
        if module is None:
            spec = importlib.util.spec_from_file_location(unique, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"no handler module at {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[unique] = module
    return getattr(module, function_name)


def sample_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    claims: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    raw_body: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload v2.0 event, built on the shared sample in events/."""
    event = copy.deepcopy(sample_event("_apigw_v2_template"))
    event["rawPath"] = path
    event["routeKey"] = f"{method} {path}"
    event["requestContext"]["http"]["method"] = method
    event["requestContext"]["http"]["path"] = path
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    event["headers"] = {
        "content-type": "application/json",
        **{k.lower(): v for k, v in (headers or {}).items()},
    }
    if idempotency_key is not None:
        event["headers"]["idempotency-key"] = idempotency_key
    if query:
        event["queryStringParameters"] = dict(query)
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    if raw_body is None and body is not None:
        raw_body = json.dumps(body)
    if raw_body is not None:
        event["body"] = raw_body
    if claims is None:
        event["requestContext"].pop("authorizer", None)
    else:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    return event


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: Any
    raw_body: str

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


def parse_result(result: dict[str, Any]) -> HttpResult:
    raw = result.get("body") or ""
    if result.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    return HttpResult(status=result["statusCode"], headers=headers, body=body, raw_body=raw)
