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
from datastorage.persistence.chain_heads import GENESIS, ChainHeadCache
from datastorage.persistence.database import Connection
from datastorage.persistence.errors import TransientDatabaseError

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
    return orjson.dumps(event.canonical_content())


# Lookup by event_id alone (any partition). `WHERE event_id = ANY($1)` let the planner pick a
# sequential scan of a whole partition when its statistics were stale (100 ms for 1,000 ids);
# one LIMIT 1 probe per id always uses the primary-key index of each partition (4 ms).
# An event_id is stored at most once, so LIMIT 1 loses nothing.
_BY_IDS = """
    SELECT {columns}
    FROM unnest($1::uuid[]) AS wanted(id)
    CROSS JOIN LATERAL (SELECT * FROM audit_events WHERE event_id = wanted.id LIMIT 1) AS found
"""


class _ConcurrentWrite(Exception):
    """Another transaction stored one of our event_ids, or created one of our new chain heads,
    between our reads and our writes; the retry sees its rows."""


async def store_events(
    connection: Connection,
    events: Sequence[NewAuditEvent],
    hasher: ChainHasher,
    heads: ChainHeadCache | None = None,
) -> list[StoredEvent]:
    """Insert `events` in one transaction, advancing the hash chains; already-stored ids are skipped.

    With `heads`, first tries the one-statement append that assumes the cached chain heads; when
    one has moved (or an id that may exist does), it changes nothing and the locking path runs.
    Returns one StoredEvent per input event, in input order.
    """
    if heads is not None and len(events) <= APPEND_MAX_EVENTS:
        try:
            return await _append(connection, events, hasher, heads)
        except _ConcurrentWrite:
            heads.forget({event.correlation_id for event in events})
    check_every_id = False
    for _ in range(_ATTEMPTS):
        try:
            results, seen = await _store_once(
                connection, events, hasher, check_every_id=check_every_id
            )
        except _ConcurrentWrite:
            # The retry sees the other transaction's rows; it also looks up every event_id, not
            # only those that may exist, so no assumption about fresh ids can make it fail again.
            check_every_id = True
            continue
        if heads is not None:
            heads.remember(seen.items())
        return results
    raise TransientDatabaseError("concurrent flushes kept conflicting on the same events")


_ATTEMPTS = 4
# Above this many events COPY's cheaper row encoding outweighs the round trips it adds
# (measured: 1,000-event flushes 17k events/s with COPY, 14k with the one-statement append).
APPEND_MAX_EVENTS = 256
# Raised by audit_append (migration 0002) when its assumptions do not hold.
_APPEND_REFUSED = frozenset({"DSC01", "DSC02"})


async def _append(
    connection: Connection,
    events: Sequence[NewAuditEvent],
    hasher: ChainHasher,
    heads: ChainHeadCache,
) -> list[StoredEvent]:
    assumed = {event.correlation_id: heads.get(event.correlation_id) for event in events}
    rows, results, advanced = _chain(events, {}, assumed, hasher)
    names = sorted(advanced)
    may_exist = list({event.event_id for event in events if event.may_exist})
    try:
        await connection.execute(
            "SELECT audit_append($1, $2, $3, $4, $5, $6, $7)",
            rows,
            names,
            [assumed[name][0] for name in names],
            [assumed[name][1] for name in names],
            [advanced[name][0] for name in names],
            [advanced[name][1] for name in names],
            may_exist,
        )
    except asyncpg.PostgresError as exc:
        if exc.sqlstate in _APPEND_REFUSED or isinstance(exc, asyncpg.UniqueViolationError):
            raise _ConcurrentWrite from exc
        raise
    heads.remember(advanced.items())
    return results


async def _store_once(
    connection: Connection,
    events: Sequence[NewAuditEvent],
    hasher: ChainHasher,
    *,
    check_every_id: bool,
) -> tuple[list[StoredEvent], dict[str, tuple[int, str]]]:
    """One attempt of the locking path; also returns the heads as committed."""
    async with connection.transaction():
        # Plan the head statements for these names: a generic plan cached while the head table
        # was small seq-scans it on every later flush of this pooled connection (as in 0006).
        await connection.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        correlations = sorted({event.correlation_id for event in events})
        heads, found = await _lock_chain_heads(connection, correlations)
        existing = await _existing(
            connection, [e.event_id for e in events if e.may_exist or check_every_id]
        )
        rows, results, advanced = _chain(events, existing, heads, hasher)
        if rows:
            try:
                await connection.copy_records_to_table(
                    "audit_events", records=rows, columns=INSERT_COLUMNS
                )
            except asyncpg.UniqueViolationError as exc:
                raise _ConcurrentWrite from exc
            await _advance_chain_heads(connection, advanced, found)
    return results, {**heads, **advanced}


async def _lock_chain_heads(
    connection: Connection, correlations: list[str]
) -> tuple[dict[str, tuple[int, str]], set[str]]:
    """Lock the existing heads, in sorted order so two flushes never deadlock.

    FOR UPDATE returns the latest committed values even when it had to wait for another flush.
    Correlations without a head yet start at 0 and are created by `_advance_chain_heads`.
    """
    rows = await connection.fetch(
        """
        SELECT correlation_id, last_seq, last_hash FROM audit_chain_heads
        WHERE correlation_id = ANY($1::varchar[])
        ORDER BY correlation_id
        FOR UPDATE
        """,
        correlations,
    )
    heads = {row[0]: (row[1], row[2]) for row in rows}
    found = set(heads)
    for correlation in correlations:
        heads.setdefault(correlation, GENESIS)
    return heads, found


async def _advance_chain_heads(
    connection: Connection, advanced: dict[str, tuple[int, str]], found: set[str]
) -> None:
    """One write per head: update the locked ones, insert the new ones (sorted: no deadlocks).

    A new head that another flush created meanwhile is a conflict: its chain already started,
    so this transaction's numbering is stale and the whole flush is retried.
    """
    names = sorted(advanced)
    is_new = [name not in found for name in names]
    inserted = await connection.fetchval(
        """
        WITH v AS (
            SELECT * FROM unnest($1::varchar[], $2::bigint[], $3::varchar[], $4::bool[])
                AS v(correlation_id, seq, hash, is_new)
        ),
        updated AS (
            UPDATE audit_chain_heads AS h
            SET last_seq = v.seq, last_hash = v.hash, updated_at = now()
            FROM v WHERE NOT v.is_new AND h.correlation_id = v.correlation_id
        ),
        created AS (
            INSERT INTO audit_chain_heads (correlation_id, last_seq, last_hash)
            SELECT correlation_id, seq, hash FROM v WHERE v.is_new ORDER BY correlation_id
            ON CONFLICT (correlation_id) DO NOTHING
            RETURNING 1
        )
        SELECT count(*) FROM created
        """,
        names,
        [advanced[name][0] for name in names],
        [advanced[name][1] for name in names],
        is_new,
    )
    if inserted != sum(is_new):
        raise _ConcurrentWrite


async def _existing(
    connection: Connection, event_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dt.datetime]:
    if not event_ids:
        return {}
    rows = await connection.fetch(_BY_IDS.format(columns="event_id, event_timestamp"), event_ids)
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
    rows = await db_pool.fetch(_BY_IDS.format(columns="event_id"), list(event_ids))
    return {row[0] for row in rows}


async def get_events(
    db_pool: asyncpg.Pool, event_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, AuditEventRecord]:
    """The stored events among `event_ids`, by id (one statement for any number of ids)."""
    if not event_ids:
        return {}
    rows = await db_pool.fetch(_BY_IDS.format(columns=SELECT_COLUMNS), list(event_ids))
    return {row[0]: AuditEventRecord._make(row) for row in rows}


async def correlation_timeline(
    db_pool: asyncpg.Pool, correlation_id: str, limit: int
) -> list[AuditEventRecord]:
    """Events of one correlation in chain order (oldest first)."""
    rows = await db_pool.fetch(
        f"SELECT {SELECT_COLUMNS} FROM audit_events WHERE correlation_id = $1 "
        f"ORDER BY chain_seq LIMIT {int(limit)}",
        correlation_id,
    )
    return [AuditEventRecord._make(row) for row in rows]


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
    events = [AuditEventRecord._make(row) for row in rows[: page.limit]]
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
