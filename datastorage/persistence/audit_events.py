"""SQL for audit events: the batched insert with its hash chain, and the read queries."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from datastorage.domain import (
    AuditEventFilter,
    AuditEventRecord,
    EventPage,
    Keyset,
    NewAuditEvent,
    PageRequest,
    StoredEvent,
)
from datastorage.persistence.database import Connection

INSERT_COLUMNS = (
    "event_id", "event_date", "event_timestamp", "event_version", "event_type", "event_category",
    "event_action", "event_outcome", "actor_type", "actor_id", "actor_ip", "resource_type",
    "resource_id", "resource_name", "correlation_id", "parent_event_id", "namespace",
    "cluster_name", "severity", "duration_ms", "error_code", "error_message", "retention_days",
    "is_sensitive", "event_data", "trace_id", "span_id", "chain_seq", "event_hash",
    "previous_event_hash", "hash_algorithm",
)  # fmt: skip

# Same order as AuditEventRecord's fields, so a row becomes a record positionally.
SELECT_COLUMNS = """
    event_id, event_date, event_timestamp, event_version, event_type, event_category,
    event_action, event_outcome, actor_type, actor_id, host(actor_ip), resource_type,
    resource_id, resource_name, correlation_id, parent_event_id, namespace, cluster_name,
    severity, duration_ms, error_code, error_message, retention_days, is_sensitive,
    event_data::text, trace_id, span_id, chain_seq, event_hash, previous_event_hash,
    hash_algorithm, legal_hold, legal_hold_reason, legal_hold_placed_by, legal_hold_placed_at,
    ingested_at
"""


@dataclass(frozen=True, slots=True)
class ChainHasher:
    """Computes `event_hash` = SHA-256 (or HMAC-SHA-256 with a key) of previous hash || content."""

    key: bytes | None = None

    @property
    def algorithm(self) -> str:
        return "hmac-sha256" if self.key else "sha256"

    def digest(self, previous_hash: str, event: NewAuditEvent) -> str:
        content = previous_hash.encode() + canonical_json(event)
        if self.key:
            return hmac.new(self.key, content, hashlib.sha256).hexdigest()
        return hashlib.sha256(content).hexdigest()


def canonical_json(event: NewAuditEvent) -> bytes:
    """Sorted keys, compact, UTF-8; event_data is already stored in that form."""
    return orjson.dumps(event.canonical_content(), option=orjson.OPT_SORT_KEYS)


class _DuplicateRace(Exception):
    """Another transaction committed one of our event_ids between our check and our insert."""


async def store_events(
    connection: Connection, events: Sequence[NewAuditEvent], hasher: ChainHasher
) -> list[StoredEvent]:
    """Insert `events` in one transaction, advancing the hash chains; already-stored ids are skipped.

    Returns one StoredEvent per input event, in input order.
    """
    for _ in range(3):
        try:
            return await _store_once(connection, events, hasher)
        except _DuplicateRace:
            continue  # the retry sees the other transaction's rows and skips them
    return await _store_once(connection, events, hasher)


async def _store_once(
    connection: Connection, events: Sequence[NewAuditEvent], hasher: ChainHasher
) -> list[StoredEvent]:
    async with connection.transaction():
        heads = await _lock_chain_heads(
            connection, sorted({event.correlation_id for event in events})
        )
        existing = await _existing(connection, [event.event_id for event in events])
        rows, results, advanced = _chain(events, existing, heads, hasher)
        if rows:
            try:
                await connection.copy_records_to_table(
                    "audit_events", records=rows, columns=INSERT_COLUMNS
                )
            except asyncpg.UniqueViolationError as exc:
                raise _DuplicateRace from exc
            await connection.execute(
                """
                UPDATE audit_chain_heads AS h
                SET last_seq = v.seq, last_hash = v.hash, updated_at = now()
                FROM unnest($1::varchar[], $2::bigint[], $3::varchar[]) AS v(correlation_id, seq, hash)
                WHERE h.correlation_id = v.correlation_id
                """,
                list(advanced),
                [seq for seq, _ in advanced.values()],
                [digest for _, digest in advanced.values()],
            )
    return results


async def _lock_chain_heads(
    connection: Connection, correlations: list[str]
) -> dict[str, tuple[int, str]]:
    # Creating and locking the heads in sorted order means two flushes never deadlock.
    rows = await connection.fetch(
        """
        INSERT INTO audit_chain_heads AS h (correlation_id)
        SELECT c FROM unnest($1::varchar[]) AS c ORDER BY c
        ON CONFLICT (correlation_id) DO UPDATE SET last_seq = h.last_seq
        RETURNING correlation_id, last_seq, last_hash
        """,
        correlations,
    )
    return {row[0]: (row[1], row[2]) for row in rows}


async def _existing(
    connection: Connection, event_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dt.datetime]:
    rows = await connection.fetch(
        "SELECT event_id, event_timestamp FROM audit_events WHERE event_id = ANY($1::uuid[])",
        event_ids,
    )
    return {row[0]: row[1] for row in rows}


def _chain(
    events: Sequence[NewAuditEvent],
    existing: dict[uuid.UUID, dt.datetime],
    heads: dict[str, tuple[int, str]],
    hasher: ChainHasher,
) -> tuple[list[tuple[Any, ...]], list[StoredEvent], dict[str, tuple[int, str]]]:
    rows: list[tuple[Any, ...]] = []
    results: list[StoredEvent] = []
    advanced: dict[str, tuple[int, str]] = {}
    for event in events:
        stored_at = existing.get(event.event_id)
        if stored_at is not None:
            results.append(StoredEvent(event.event_id, stored_at, duplicate=True))
            continue
        seq, previous = advanced.get(event.correlation_id) or heads[event.correlation_id]
        digest = hasher.digest(previous, event)
        advanced[event.correlation_id] = (seq + 1, digest)
        existing[event.event_id] = (
            event.event_timestamp
        )  # a repeat later in this flush is a duplicate
        rows.append(_row(event, seq + 1, digest, previous, hasher.algorithm))
        results.append(StoredEvent(event.event_id, event.event_timestamp))
    return rows, results, advanced


def _row(
    event: NewAuditEvent, seq: int, digest: str, previous: str, algorithm: str
) -> tuple[Any, ...]:
    return (
        event.event_id, event.event_date, event.event_timestamp, event.event_version,
        event.event_type, event.event_category, event.event_action, event.event_outcome,
        event.actor_type, event.actor_id, event.actor_ip, event.resource_type, event.resource_id,
        event.resource_name, event.correlation_id, event.parent_event_id, event.namespace,
        event.cluster_name, event.severity, event.duration_ms, event.error_code,
        event.error_message, event.retention_days, event.is_sensitive, event.event_data_json,
        event.trace_id, event.span_id, seq, digest, previous, algorithm,
    )  # fmt: skip


async def find_existing_ids(
    db_pool: asyncpg.Pool, event_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of `event_ids` are stored (used to check parent references)."""
    if not event_ids:
        return set()
    rows = await db_pool.fetch(
        "SELECT event_id FROM audit_events WHERE event_id = ANY($1::uuid[])", list(event_ids)
    )
    return {row[0] for row in rows}


async def get_events(
    db_pool: asyncpg.Pool, event_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, AuditEventRecord]:
    """The stored events among `event_ids`, by id (one statement for any number of ids)."""
    rows = await db_pool.fetch(
        f"SELECT {SELECT_COLUMNS} FROM audit_events WHERE event_id = ANY($1::uuid[])",
        list(event_ids),
    )
    return {row[0]: AuditEventRecord(*row) for row in rows}


async def correlation_timeline(
    db_pool: asyncpg.Pool, correlation_id: str, limit: int
) -> list[AuditEventRecord]:
    """Events of one correlation in chain order (oldest first)."""
    rows = await db_pool.fetch(
        f"SELECT {SELECT_COLUMNS} FROM audit_events WHERE correlation_id = $1 "
        f"ORDER BY chain_seq LIMIT {int(limit)}",
        correlation_id,
    )
    return [AuditEventRecord(*row) for row in rows]


_EQUALITY_FILTERS = (
    "event_type", "event_category", "event_outcome", "severity", "correlation_id", "actor_id",
    "resource_type", "resource_id", "namespace",
)  # fmt: skip


def _where(filters: AuditEventFilter, after: Keyset | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []

    def bind(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    for name in _EQUALITY_FILTERS:
        value = getattr(filters, name)
        if value is not None:
            clauses.append(f"{name} = {bind(value)}")
    if filters.since is not None:
        # The event_date bound is what lets PostgreSQL skip whole partitions.
        clauses.append(f"event_timestamp >= {bind(filters.since)}")
        clauses.append(f"event_date >= {bind(filters.since.astimezone(dt.UTC).date())}")
    if filters.until is not None:
        clauses.append(f"event_timestamp <= {bind(filters.until)}")
        clauses.append(f"event_date <= {bind(filters.until.astimezone(dt.UTC).date())}")
    if filters.detail_key is not None and filters.detail_value is not None:
        clauses.append(
            f"event_data ->> {bind(filters.detail_key)}::text = {bind(filters.detail_value)}::text"
        )
    if after is not None:
        clauses.append(
            f"(event_timestamp, event_id) < ({bind(after.event_timestamp)}, {bind(after.event_id)})"
        )
        clauses.append(f"event_date <= {bind(after.event_timestamp.astimezone(dt.UTC).date())}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


async def list_events(
    db_pool: asyncpg.Pool, filters: AuditEventFilter, page: PageRequest
) -> EventPage:
    """One page, newest first; `total` only when asked for."""
    where, params = _where(filters, page.after)
    # LIMIT/OFFSET as literals: as bind parameters they make PostgreSQL re-plan the
    # partitioned query on every call (measured), and both are validated integers.
    sql = (
        f"SELECT {SELECT_COLUMNS} FROM audit_events{where} "
        f"ORDER BY event_timestamp DESC, event_id DESC LIMIT {int(page.limit) + 1}"
    )
    if page.offset and page.after is None:
        sql += f" OFFSET {int(page.offset)}"
    async with db_pool.acquire() as connection:
        rows = await connection.fetch(sql, *params)
        total = None
        if page.with_total:
            count_where, count_params = _where(filters, None)
            total = await connection.fetchval(
                f"SELECT count(*) FROM audit_events{count_where}", *count_params
            )
    has_more = len(rows) > page.limit
    events = [AuditEventRecord(*row) for row in rows[: page.limit]]
    last = events[-1] if events and has_more else None
    next_keyset = Keyset(last.event_timestamp, last.event_id) if last else None
    return EventPage(events=events, has_more=has_more, total=total, next_keyset=next_keyset)


async def count_events(db_pool: asyncpg.Pool, filters: AuditEventFilter) -> int:
    """How many events match `filters`."""
    where, params = _where(filters, None)
    return int(await db_pool.fetchval(f"SELECT count(*) FROM audit_events{where}", *params))


async def explain_list(db_pool: asyncpg.Pool, filters: AuditEventFilter, limit: int) -> str:
    """The plan of a list query, for operators and for the partition-pruning test."""
    where, params = _where(filters, None)
    rows = await db_pool.fetch(
        f"EXPLAIN SELECT event_id FROM audit_events{where} "
        f"ORDER BY event_timestamp DESC, event_id DESC LIMIT {int(limit)}",
        *params,
    )
    return "\n".join(row[0] for row in rows)
