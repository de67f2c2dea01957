"""RFC 7807 problem responses: the one table from domain errors to status and slug."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from datastorage.resolvers.errors import (
    BatchTooLarge,
    BodyTooLarge,
    Conflict,
    DomainError,
    ImmutableFieldViolation,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"

# slug → (status, title). One spelling each; docs/api/problems.md lists them.
PROBLEMS: dict[str, tuple[int, str]] = {
    "validation-error": (400, "Validation Error"),
    "invalid-request": (400, "Invalid Request"),
    "batch-size-exceeded": (400, "Batch Size Exceeded"),
    "immutable-field-violation": (400, "Immutable Field Violation"),
    "not-found": (404, "Not Found"),
    "method-not-allowed": (405, "Method Not Allowed"),
    "conflict": (409, "Conflict"),
    "request-too-large": (413, "Request Too Large"),
    "unsupported-media-type": (415, "Unsupported Media Type"),
    "rate-limit-exceeded": (429, "Rate Limit Exceeded"),
    "internal-error": (500, "Internal Server Error"),
    "service-unavailable": (503, "Service Unavailable"),
}

# First match wins: a subclass comes before its base.
_SLUG_OF: list[tuple[type[DomainError], str]] = [
    (ImmutableFieldViolation, "immutable-field-violation"),
    (ValidationFailed, "validation-error"),
    (BatchTooLarge, "batch-size-exceeded"),
    (InvalidRequest, "invalid-request"),
    (NotFound, "not-found"),
    (Conflict, "conflict"),
    (ServiceUnavailable, "service-unavailable"),
    (BodyTooLarge, "request-too-large"),
    (UnsupportedMediaType, "unsupported-media-type"),
]


def problem(
    base_uri: str,
    slug: str,
    detail: str,
    *,
    instance: str | None = None,
    field_errors: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A problem+json response for `slug`."""
    status, title = PROBLEMS[slug]
    body: dict[str, Any] = {
        "type": base_uri + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if field_errors:
        body["field_errors"] = field_errors
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def from_error(base_uri: str, error: DomainError, instance: str | None = None) -> Response:
    """The problem response for a domain error."""
    slug = next(slug for kind, slug in _SLUG_OF if isinstance(error, kind))
    field_errors = error.field_errors if isinstance(error, ValidationFailed) else None
    headers = (
        {"Retry-After": str(error.retry_after)} if isinstance(error, ServiceUnavailable) else None
    )
    return problem(
        base_uri, slug, error.detail, instance=instance, field_errors=field_errors, headers=headers
    )
