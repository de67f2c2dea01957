"""Domain records shared by every layer: plain frozen dataclasses and NamedTuples, no driver or
HTTP types. One module per domain; everything is importable from here."""

from datastorage.domain.audit import (
    AuditEventFilter,
    AuditEventRecord,
    EventOutcome,
    EventPage,
    Keyset,
    NewAuditEvent,
    PageRequest,
    StoredEvent,
    TimeRange,
    WriteResult,
    format_timestamp,
)
from datastorage.domain.notifications import (
    NewNotification,
    NotificationChannel,
    NotificationRecord,
    NotificationStatus,
)
from datastorage.domain.workflows import (
    NewWorkflow,
    WorkflowFilter,
    WorkflowKeyset,
    WorkflowPage,
    WorkflowPageRequest,
    WorkflowRecord,
    WorkflowSearchRow,
    WorkflowStatus,
    WorkflowStatusChange,
)

__all__ = [
    "AuditEventFilter", "AuditEventRecord", "EventOutcome", "EventPage", "Keyset",
    "NewAuditEvent", "NewNotification", "NewWorkflow", "NotificationChannel",
    "NotificationRecord", "NotificationStatus", "PageRequest", "StoredEvent", "TimeRange",
    "WorkflowFilter", "WorkflowKeyset", "WorkflowPage", "WorkflowPageRequest", "WorkflowRecord",
    "WorkflowSearchRow", "WorkflowStatus", "WorkflowStatusChange", "WriteResult",
    "format_timestamp",
]  # fmt: skip
