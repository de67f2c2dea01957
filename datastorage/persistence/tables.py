"""The schema as SQLAlchemy Core metadata: the declared shape the SQL migrations must produce.

Request paths run hand-written SQL on asyncpg (measured faster); this declaration is checked
against a migrated database by the test suite, so a migration that drifts from it fails CI.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB, UUID

metadata = MetaData()

audit_events = Table(
    "audit_events",
    metadata,
    Column("event_id", UUID, primary_key=True),
    Column("event_date", Date, primary_key=True),
    Column("event_timestamp", DateTime(timezone=True), nullable=False),
    Column("event_version", String(20), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("event_category", String(50), nullable=False),
    Column("event_action", String(50), nullable=False),
    Column("event_outcome", String(20), nullable=False),
    Column("actor_type", String(50), nullable=False),
    Column("actor_id", String(255), nullable=False),
    Column("actor_ip", INET),
    Column("resource_type", String(100), nullable=False),
    Column("resource_id", String(255), nullable=False),
    Column("resource_name", String(255)),
    Column("correlation_id", String(255), nullable=False),
    Column("parent_event_id", UUID),
    Column("namespace", String(253)),
    Column("cluster_name", String(255)),
    Column("severity", String(20)),
    Column("duration_ms", BigInteger),
    Column("error_code", String(50)),
    Column("error_message", Text),
    Column("retention_days", Integer, nullable=False),
    Column("is_sensitive", Boolean, nullable=False),
    Column("event_data", JSONB, nullable=False),
    Column("trace_id", String(64)),
    Column("span_id", String(32)),
    Column("chain_seq", BigInteger, nullable=False),
    Column("event_hash", String(64), nullable=False),
    Column("previous_event_hash", String(64), nullable=False),
    Column("hash_algorithm", String(20), nullable=False),
    Column("legal_hold", Boolean, nullable=False),
    Column("legal_hold_reason", Text),
    Column("legal_hold_placed_by", String(255)),
    Column("legal_hold_placed_at", DateTime(timezone=True)),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

audit_chain_heads = Table(
    "audit_chain_heads",
    metadata,
    Column("correlation_id", String(255), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

audit_legal_holds = Table(
    "audit_legal_holds",
    metadata,
    Column("hold_id", BigInteger, primary_key=True),
    Column("correlation_id", String(255), nullable=False),
    Column("reason", Text, nullable=False),
    Column("placed_by", String(255), nullable=False),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("released_by", String(255)),
    Column("released_at", DateTime(timezone=True)),
    Column("release_reason", Text),
)

notification_audit = Table(
    "notification_audit",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("remediation_id", String(255), nullable=False),
    Column("notification_id", String(255), nullable=False),
    Column("recipient", String(500), nullable=False),
    Column("channel", String(50), nullable=False),
    Column("message_summary", String(1000), nullable=False),
    Column("status", String(50), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("delivery_status", String(255)),
    Column("error_message", Text),
    Column("escalation_level", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
