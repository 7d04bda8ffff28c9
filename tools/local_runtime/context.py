"""Lambda's side of an invocation: the context object, the handler import, one invocation at a time.

Every function lives in one process here (no containers). Consequences, documented in the README:
one os.environ for all functions (the union of their variables), one copy of the shared layer's
module-level caches, and modules imported under unique names (functions share one code asset).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.local_runtime.template import ACCOUNT_ID, REGION, Function, Template

Handler = Callable[[Any, Any], Any]


class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers use."""

    def __init__(
        self, function_name: str, timeout_seconds: float = 3.0, memory_limit_in_mb: int = 128
    ) -> None:
        self.function_name, self.memory_limit_in_mb = function_name, memory_limit_in_mb
        self.function_version, self.aws_request_id = "$LATEST", str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    @classmethod
    def for_function(cls, function: Function) -> LambdaContext:
        return cls(function.logical_id, float(function.timeout), function.memory_size)


def module_name_for(function: Function) -> str:
    # Unique per function and file: two functions on one module (or two templates in one test
    # session) must not share a module and its per-request state.
    digest = hashlib.sha256(str(function.module_path).encode()).hexdigest()[:10]
    return f"_local_lambda_{function.logical_id}_{digest}"


def add_to_path(*dirs: Path) -> None:
    sys.path.extend(str(directory) for directory in dirs if str(directory) not in sys.path)


def give_each_resolver_its_own_event() -> None:
    """Powertools keeps the event being resolved on the BaseRouter *class* (Lambda runs one
    invocation per process, so that is safe there). Here several functions' handlers run on threads
    of one process: without this, a transfer could read a debit's body or Idempotency-Key. Each
    resolver instance keeps its own event instead; the class attribute is still set, as before."""
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

    original = ApiGatewayResolver.resolve
    if getattr(original, "per_instance_event", False):
        return

    @functools.wraps(original)
    def resolve(self, event, context):
        self.current_event = self._to_proxy_event(event)
        self.lambda_context = context
        return original(self, event, context)

    resolve.per_instance_event = True  # type: ignore[attr-defined]
    ApiGatewayResolver.resolve = resolve  # type: ignore[method-assign]


class FunctionHost:
    """Loads handlers lazily (a first invocation is a cold start, as in Lambda) and runs at most one
    invocation per function at a time: a Lambda container never runs two events at once, and the
    handlers keep per-request state on module-level objects (the resolver and its event)."""

    def __init__(self, template: Template) -> None:
        give_each_resolver_its_own_event()
        self.template = template
        self.functions = template.functions()
        self._handlers: dict[str, Handler] = {}
        self._locks = {logical_id: threading.Lock() for logical_id in self.functions}
        self._import_lock = threading.Lock()
        add_to_path(*template.layer_dirs())

    def function(self, logical_id: str) -> Function:
        return self.template.function(logical_id, self.functions)

    def handler(self, logical_id: str) -> Handler:
        with self._import_lock:
            if logical_id not in self._handlers:
                self._handlers[logical_id] = load_handler(self.function(logical_id))
            return self._handlers[logical_id]

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Run the handler; exceptions propagate (callers map them as Lambda's caller would)."""
        handler = self.handler(logical_id)
        with self._locks[logical_id]:
            return handler(event, LambdaContext.for_function(self.function(logical_id)))


def load_handler(function: Function) -> Handler:
    # Lambda puts the function's code root on sys.path (/var/task): sibling modules of the handler
    # (migrations/runner.py) must import. Appended so the layer still wins for shared names.
    add_to_path(function.code_uri)
    name = module_name_for(function)
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, function.module_path)
        sys.modules[name] = module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except BaseException:
            del sys.modules[name]  # a failed import must not leave a half-initialised module behind
            raise
    return getattr(sys.modules[name], function.handler.rsplit(".", 1)[1])


def error_payload(exc: BaseException) -> dict[str, Any]:
    """What Lambda returns for an unhandled exception (what `sam local invoke` prints)."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }
