"""The group-commit writer under load, backpressure, bad data and an unreachable database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from datastorage.app import create_app
from datastorage.settings import Settings
from tests.conftest import event_body, running

pytestmark = pytest.mark.usefixtures("clean")


async def test_100_concurrent_writers_on_a_pool_of_25(
    make_settings: Callable[..., Settings], db: asyncpg.Connection
) -> None:
    settings = make_settings(database={"pool_size": 25})
    async with running(create_app(settings)) as client:
        bodies = [event_body(correlation_id=f"w-{i % 7}") for i in range(100)]
        single = [client.post("/api/v1/audit/events", json=body) for body in bodies[:50]]
        batches = [
            client.post("/api/v1/audit/events/batch", json=bodies[i : i + 5])
            for i in range(50, 100, 5)
        ]
        reads = [client.get("/api/v1/audit/events", params={"limit": 10}) for _ in range(40)]
        answers = await asyncio.gather(*single, *batches, *reads)
    assert [a.status_code for a in answers[:60]] == [201] * 60
    assert all(a.status_code == 200 for a in answers[60:])
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 100
    # Each correlation's chain is gapless whatever the interleaving of flushes.
    gaps = await db.fetchval(
        "SELECT count(*) FROM (SELECT correlation_id, max(chain_seq) AS m, count(*) AS n FROM audit_events "
        "GROUP BY correlation_id) c WHERE m <> n"
    )
    assert gaps == 0


async def test_full_queue_answers_503_with_retry_after_and_drops_nothing(
    make_settings: Callable[..., Settings], database_url: str, db: asyncpg.Connection
) -> None:
    settings = make_settings(
        writer={"queue_max": 3, "enqueue_timeout_s": 0.2, "flushers": 1, "max_batch": 1}
    )
    blocker = await asyncpg.connect(database_url)
    try:
        async with running(create_app(settings)) as client:
            # Hold the chain head of a correlation: the first flush waits on it, the queue fills up.
            await blocker.execute("INSERT INTO audit_chain_heads (correlation_id) VALUES ('stuck')")
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.execute(
                "SELECT * FROM audit_chain_heads WHERE correlation_id = 'stuck' FOR UPDATE"
            )
            stuck = [
                asyncio.create_task(
                    client.post("/api/v1/audit/events", json=event_body(correlation_id="stuck"))
                )
                for _ in range(4)
            ]
            await asyncio.sleep(0.3)
            refused = await client.post("/api/v1/audit/events", json=event_body())
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["type"].endswith("/service-unavailable")
            await transaction.rollback()
            answers = await asyncio.gather(*stuck)
    finally:
        await blocker.close()
    accepted = [a for a in answers if a.status_code == 201]
    assert all(a.status_code in (201, 503) for a in answers)
    assert len(accepted) >= 3
    # Exactly the acknowledged events are stored: nothing refused was written, nothing accepted lost.
    stored = {row[0] for row in await db.fetch("SELECT event_id::text FROM audit_events")}
    assert stored == {a.json()["event_id"] for a in accepted}


async def test_bad_data_in_one_request_does_not_fail_its_batch_companions(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    # A rule only PostgreSQL knows about: the writer must isolate the offending request.
    await db.execute(
        "ALTER TABLE audit_events ADD CONSTRAINT test_no_poison CHECK (event_action <> 'poison') NOT VALID"
    )
    try:
        bodies = [event_body(event_action="poison" if i == 3 else "ok") for i in range(12)]
        answers = await asyncio.gather(
            *(client.post("/api/v1/audit/events", json=body) for body in bodies)
        )
    finally:
        await db.execute("ALTER TABLE audit_events DROP CONSTRAINT test_no_poison")
    statuses = [a.status_code for a in answers]
    assert statuses == [400 if i == 3 else 201 for i in range(12)]
    assert answers[3].json()["type"].endswith("/validation-error")
    assert (
        "test_no_poison" in answers[3].json()["detail"]
        or "constraint" in answers[3].json()["detail"]
    )
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 11


async def test_unreachable_database_without_a_dlq_answers_503_and_acknowledges_nothing(
    make_settings: Callable[..., Settings], db: asyncpg.Connection
) -> None:
    # With Redis configured the write would be queued (202): see tests/outage.
    app = create_app(make_settings(redis={"url": None}))
    async with running(app) as client:
        await app.state.services.database.pool.close()
        response = await client.post("/api/v1/audit/events", json=event_body())
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert "SELECT" not in response.text and "asyncpg" not in response.text
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 0


async def test_an_idle_writer_does_not_hold_a_write_for_the_batching_window(
    make_settings: Callable[..., Settings], db: asyncpg.Connection
) -> None:
    # The window only applies while another flush is running; a lone write is flushed at once.
    settings = make_settings(writer={"max_wait_ms": 10_000, "flushers": 1})
    async with running(create_app(settings)) as client:
        response = await asyncio.wait_for(
            client.post("/api/v1/audit/events", json=event_body()), timeout=5
        )
    assert response.status_code == 201
    assert await db.fetchval("SELECT count(*) FROM audit_events") == 1
