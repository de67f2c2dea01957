"""Domain errors: each surface maps these in one table (problem slug + status, GraphQL union)."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a resolver raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailed(DomainError):
    """Input breaks a rule; `field_errors` maps a dotted field path to the broken rule."""

    def __init__(self, field_errors: dict[str, str], detail: str | None = None) -> None:
        super().__init__(detail or _summary(field_errors))
        self.field_errors = field_errors


class ImmutableFieldViolation(ValidationFailed):
    """A change to a field that only a new version may change; `field_errors` names each one."""


class InvalidRequest(DomainError):
    """The request has the wrong shape as a whole (not JSON, a scalar, an empty batch)."""


class BatchTooLarge(DomainError):
    """A batch holds more events than the configured limit."""


class BodyTooLarge(DomainError):
    """The request body is over the configured limit."""


class UnsupportedMediaType(DomainError):
    """The request body is not declared as JSON."""


class NotFound(DomainError):
    """The addressed resource does not exist."""


class Conflict(DomainError):
    """The resource already exists."""


class ServiceUnavailable(DomainError):
    """The write cannot be taken now; the caller keeps the data and retries after `retry_after`."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def _summary(field_errors: dict[str, str]) -> str:
    count = len(field_errors)
    if count == 1:
        field, rule = next(iter(field_errors.items()))
        return f"{field}: {rule}"
    return f"{count} fields are invalid"
