"""Errors the persistence layer raises instead of driver exceptions."""

from __future__ import annotations


class PersistenceError(Exception):
    """Base of persistence failures; messages are safe to log, never sent to clients verbatim."""


class TransientDatabaseError(PersistenceError):
    """PostgreSQL cannot take the write now (down, restarting, overloaded); a retry may succeed."""


class MissingPartition(TransientDatabaseError):
    """No audit_events partition covers an event's date: maintenance may not have run yet."""


class PermanentDataError(PersistenceError):
    """PostgreSQL rejected the data itself; retrying or queueing the same data cannot succeed."""

    def __init__(self, message: str, sqlstate: str = "") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class DuplicateNotification(PermanentDataError):
    """A notification audit record with this notification_id is already stored."""

    def __init__(self, notification_id: str, *, differs: bool = False) -> None:
        what = "a different record" if differs else "a record"
        # The id stays out of the message: each caller words its own answer from the attribute.
        super().__init__(f"{what} with this notification_id is already stored", sqlstate="23505")
        self.notification_id = notification_id
        self.differs = differs


class DuplicateWorkflow(PermanentDataError):
    """A workflow with this (workflow_name, version) is already stored."""

    def __init__(self, workflow_name: str, version: str) -> None:
        # Name and version stay out of the message, as for notifications: callers word the answer.
        super().__init__("a workflow with this name and version is already stored", "23505")
        self.workflow_name = workflow_name
        self.version = version


class MigrationError(PersistenceError):
    """The schema cannot be brought up to date (e.g. an applied migration was edited)."""


class WriteRejected(PersistenceError):
    """PostgreSQL refused a request's events for a reason in the data; nothing of it was stored."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WriteUnavailable(PersistenceError):
    """The write could not be stored nor queued; nothing was acknowledged, the caller may retry."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
