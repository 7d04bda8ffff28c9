"""The request guard: what every request must be before any route reads it (contract "Edges").

One place, for every route, before Powertools parses anything: media type, size, UTF-8, the shape
of the JSON (depth, digits, duplicate keys, NaN), and control characters in query parameters and
path parameters. Each failure is a 4xx problem; nothing a client sends may reach a 5xx (every 5xx
counts against the alarms that roll a deployment back).

Also used by the provider-event consumer: an event body obeys the same rules.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from wallet_core.domain import errors
from wallet_core.http.auth import principal_from_event

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_NUMBER_DIGITS = 20

# C0 controls except tab, LF and CR (PostgreSQL cannot store U+0000 at all; the others are never
# meant in a reference or a key and break logs and terminals), and lone UTF-16 surrogates (JSON can
# spell them as \ud800, but they cannot be encoded as UTF-8, so no driver can send them).
_FORBIDDEN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
TEXT_RULE = "must not contain control characters (U+0000-U+001F except tab, CR, LF) or lone surrogates"

# A JSON string literal (escapes included), so brackets inside strings are not counted as nesting.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")

_JSON = "application/json"
_BODILESS_METHODS = ("GET", "HEAD", "OPTIONS")


class UnsupportedMediaTypeError(errors.WalletServiceError):
    """The body must be application/json (optionally with charset=utf-8)."""

    code = "unsupported_media_type"


class PayloadTooLargeError(errors.WalletServiceError):
    """The body is larger than 64 KiB."""

    code = "payload_too_large"


class BodyError(ValueError):
    """A body that is not acceptable JSON; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def has_forbidden_text(value: str) -> bool:
    return _FORBIDDEN_TEXT.search(value) is not None


def check_text(value: str) -> str:
    """Pydantic AfterValidator for every free-text field, metadata key and value."""
    if has_forbidden_text(value):
        raise ValueError(TEXT_RULE)
    return value


def without_forbidden_text(value: str) -> str:
    """For echoing a client's text back (field names, log lines): forbidden characters replaced."""
    return _FORBIDDEN_TEXT.sub("\ufffd", value)


# JSON ----------------------------------------------------------------------------------------------


def depth_of(text: str) -> int:
    """How deeply the JSON text nests arrays and objects (brackets inside strings do not count)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _digits(literal: str) -> int:
    mantissa = literal.lower().split("e", 1)[0]
    return sum(char.isdigit() for char in mantissa)


def _parse_int(literal: str) -> int:
    # Checked before int(): Python refuses to parse more than 4300 digits with a plain ValueError.
    if _digits(literal) > MAX_NUMBER_DIGITS:
        raise BodyError(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return int(literal)


def _parse_float(literal: str) -> float:
    if _digits(literal) > MAX_NUMBER_DIGITS:
        raise BodyError(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return float(literal)


def _reject_constant(literal: str) -> Any:
    raise BodyError(f"{literal} is not JSON (no NaN or Infinity)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        # Parsers disagree on which duplicate wins; a payments API must not guess.
        raise BodyError("an object has the same key twice")
    return document


def parse_json(text: str) -> Any:
    """Strict JSON: at most MAX_DEPTH levels of nesting, numbers of at most MAX_NUMBER_DIGITS
    digits, no duplicate keys, no NaN/Infinity. Raises BodyError with a reason safe to show."""
    if depth_of(text) > MAX_DEPTH:
        # Checked before parsing: Python's parser recurses and gives up around 1000 levels.
        raise BodyError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_reject_constant,
        )
    except BodyError:
        raise
    except RecursionError as exc:  # pragma: no cover - the depth check comes first
        raise BodyError(f"nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "cannot parse"
        raise BodyError(f"malformed JSON: {reason}") from exc


# The request ---------------------------------------------------------------------------------------


def _header(headers: dict[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == name:
            return value if isinstance(value, str) else None
    return None


def is_json_media_type(content_type: str) -> bool:
    """application/json, compared case-insensitively, optionally with charset=utf-8 (quoted or not)."""
    media_type, *parameters = (part.strip() for part in content_type.split(";"))
    if media_type.lower() != _JSON:
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            return False
    return True


def _body_error(message: str) -> errors.ValidationError:
    return errors.ValidationError(
        "The request body is not valid.", errors=[{"field": "body", "message": message}]
    )


def _raw_body(event: dict[str, Any]) -> bytes | None:
    body = event.get("body")
    if not isinstance(body, str) or body == "":
        return None
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _body_error("isBase64Encoded is set but the body is not base64") from exc
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _body_error("the body is not UTF-8") from exc


def check_body(event: dict[str, Any]) -> None:
    """Size, media type, UTF-8 and JSON shape of the body, on every route that reads one: every
    POST (a POST that ignores its body still hashes it into the idempotency fingerprint, so it
    must be parseable too). GET and HEAD have no body semantics: theirs is never read."""
    method = ((event.get("requestContext") or {}).get("http") or {}).get("method")
    if isinstance(method, str) and method.upper() in _BODILESS_METHODS:
        return
    raw = _raw_body(event)
    if raw is None:
        return  # no body: nothing to type; a route that needs one says so itself
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"The body is {len(raw)} bytes; at most {MAX_BODY_BYTES} are accepted.")
    content_type = _header(event.get("headers") or {}, "content-type") or ""
    if not is_json_media_type(content_type):
        raise UnsupportedMediaTypeError(
            "The body must be sent as Content-Type: application/json (optionally charset=utf-8)."
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _body_error("the body is not UTF-8") from exc
    try:
        parse_json(text)
    except BodyError as exc:
        raise _body_error(exc.reason) from exc


def check_parameters(event: dict[str, Any]) -> None:
    """Query and path parameters (names and values): no control characters, each error naming
    the parameter."""
    field_errors = []
    for source in ("queryStringParameters", "pathParameters"):
        for name, value in (event.get(source) or {}).items():
            texts = [name, *(value if isinstance(value, list) else [value])]
            if any(isinstance(text, str) and has_forbidden_text(text) for text in texts):
                field_errors.append({"field": without_forbidden_text(str(name)), "message": TEXT_RULE})
    if field_errors:
        raise errors.ValidationError("The request is not valid.", errors=field_errors)


def check_claims(event: dict[str, Any]) -> None:
    """A verified token whose subject cannot be stored is refused like a bad token (401) before
    anything else looks at the request, not discovered as a database error halfway through a
    command. Routes without a token (the probes) have no claims to check."""
    context = event.get("requestContext") or {}
    if ((context.get("authorizer") or {}).get("jwt") or {}).get("claims"):
        principal_from_event(event)


def check_request(event: dict[str, Any]) -> None:
    check_claims(event)
    check_body(event)
    check_parameters(event)


def with_canonical_media_type(event: dict[str, Any]) -> dict[str, Any]:
    """The event with an accepted JSON Content-Type spelled as Powertools expects it (it compares
    case-sensitively and would refuse APPLICATION/JSON); the caller's event is not changed."""
    headers = event.get("headers") or {}
    content_type = _header(headers, "content-type")
    if content_type is None or content_type == _JSON or not is_json_media_type(content_type):
        return event
    canonical = {name: value for name, value in headers.items() if str(name).lower() != "content-type"}
    return {**event, "headers": {**canonical, "content-type": _JSON}}
