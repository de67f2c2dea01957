"""Reading request bodies and writing legacy JSON, both with orjson."""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from datastorage.domain import AuditEventRecord
from datastorage.resolvers.errors import BodyTooLarge, InvalidRequest, UnsupportedMediaType

_JSON_OPTIONS = orjson.OPT_UTC_Z
# A number token of 19 or more digits may be an integer beyond 64 bits: after `:`, `[` or `,`
# (with optional blanks and sign). Digit runs inside strings (ids, fingerprints) do not match, so
# they keep orjson's speed; a string that happens to contain such a sequence only costs the slower
# exact parser.
_LONG_NUMBER = re.compile(rb"[:\[,]\s*-?\d{19}")
# The expression tries every `:`, `,` and `[` of a body (3 µs for a 500-byte event); mapping
# digits to "9" and looking for nineteen in a row (0.4 µs) rules most bodies out first.
_DIGITS_TO_NINES = bytes.maketrans(b"0123456789", b"9" * 10)
_NINETEEN_DIGITS = b"9" * 19


async def read_json(request: Request, limit: int) -> Any:
    """The parsed JSON body; 413 over `limit`, 415 if not declared JSON, 400 if not valid JSON."""
    check_json_headers(
        request.headers.get("content-type", ""), request.headers.get("content-length"), limit
    )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"the body is over the limit of {limit} bytes")
    return parse_json(body)


def check_json_headers(content_type: str, content_length: str | None, limit: int) -> None:
    """415 unless the body is declared JSON; 413 when its declared length is over `limit`."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"the body must be application/json, got {media_type or 'nothing'!r}"
        )
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raise BodyTooLarge(f"the body is {content_length} bytes; the limit is {limit}")


def parse_json(body: bytes | bytearray) -> Any:
    """The JSON value of a body; InvalidRequest (400) naming the position when it is not JSON."""
    if (
        body.translate(_DIGITS_TO_NINES).find(_NINETEEN_DIGITS) >= 0
        and _LONG_NUMBER.search(body) is not None
    ):
        # orjson turns integers beyond 64 bits into floats, silently losing digits; the standard
        # parser keeps them exact so that validation can refuse them by name.
        try:
            return json.loads(body, parse_constant=_not_json, parse_float=_finite_float)
        except (ValueError, RecursionError) as exc:
            raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"the body is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None


def dump_json(content: Any) -> bytes:
    """`content` as JSON bytes, as every REST answer writes it (timestamps RFC 3339 with Z)."""
    return orjson.dumps(content, default=_default, option=_JSON_OPTIONS)


def _not_json(name: str) -> Any:
    # The standard parser takes NaN and Infinity, which JSON (and orjson) refuse.
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    # 1e400 would become inf, which orjson then writes as null: refuse it like orjson does.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _default(value: Any) -> Any:
    # asyncpg hands back its own UUID subclass, which orjson does not recognise.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response serialised by orjson (timestamps as RFC 3339 with Z)."""
    return Response(
        dump_json(content),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def legacy_event(record: AuditEventRecord) -> dict[str, Any]:
    """An event in the legacy wire format (`version`, both `cluster_name` and `cluster_id`)."""
    return {
        "event_id": record.event_id,
        "version": record.event_version,
        "event_type": record.event_type,
        "event_timestamp": record.event_timestamp,
        "event_date": record.event_date,
        "event_category": record.event_category,
        "event_action": record.event_action,
        "event_outcome": record.event_outcome,
        "actor_type": record.actor_type,
        "actor_id": record.actor_id,
        "actor_ip": record.actor_ip,
        "resource_type": record.resource_type,
        "resource_id": record.resource_id,
        "resource_name": record.resource_name,
        "correlation_id": record.correlation_id,
        "parent_event_id": record.parent_event_id,
        "namespace": record.namespace,
        "cluster_name": record.cluster_name,
        "cluster_id": record.cluster_name,
        "severity": record.severity,
        "duration_ms": record.duration_ms,
        "error_code": record.error_code,
        "error_message": record.error_message,
        "retention_days": record.retention_days,
        "is_sensitive": record.is_sensitive,
        "event_data": orjson.Fragment(record.event_data_json),
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "chain_seq": record.chain_seq,
        "event_hash": record.event_hash,
        "previous_event_hash": record.previous_event_hash,
        "hash_algorithm": record.hash_algorithm,
        "legal_hold": record.legal_hold,
        "legal_hold_reason": record.legal_hold_reason,
        "legal_hold_placed_by": record.legal_hold_placed_by,
        "legal_hold_placed_at": record.legal_hold_placed_at,
        "ingested_at": record.ingested_at,
    }
