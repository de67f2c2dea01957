"""Replay details: poison entries go to the dead letters with their reason and block nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import orjson
import redis.asyncio as redis

from datastorage.app import create_app
from datastorage.settings import Settings
from tests.conftest import event_body, metric, running
from tests.outage.conftest import PrivatePostgres, PrivateRedis
from tests.outage.test_postgres_outage import stored_ids, wait_for

SINGLE = "/api/v1/audit/events"


async def test_poison_entries_are_dead_lettered_with_their_reason(
    outage_settings: Callable[..., Settings], pg: PrivatePostgres, redis_server: PrivateRedis
) -> None:
    app = create_app(outage_settings())
    client_redis = redis.Redis.from_url(redis_server.url)
    try:
        async with running(app) as client:
            pg.stop()
            good = [event_body(event_id=str(uuid.uuid4())) for _ in range(3)]
            for body in good:
                assert (await client.post(SINGLE, json=body)).status_code == 202
            entries = await client_redis.xrange("audit:dlq:events")
            template = orjson.loads(entries[0][1][b"message"])
            # PostgreSQL refuses this one (CHECK on event_outcome): a permanent error.
            refused = dict(template)
            refused["payload"] = {
                **template["payload"],
                "event_id": str(uuid.uuid4()),
                "event_outcome": "exploded",
            }
            await client_redis.xadd("audit:dlq:events", {"message": orjson.dumps(refused)})
            await client_redis.xadd("audit:dlq:events", {"message": b"{not json"})
            # Retried too often for an unknown reason.
            tired = {**template, "retry_count": 6, "last_error": "RuntimeError"}
            tired["payload"] = {**template["payload"], "event_id": str(uuid.uuid4())}
            await client_redis.xadd("audit:dlq:events", {"message": orjson.dumps(tired)})
            # Older than any partition kept: maintenance cannot help, so it is the data's fault.
            ancient = dict(template)
            ancient["payload"] = {
                **template["payload"],
                "event_id": str(uuid.uuid4()),
                "event_timestamp": "2020-01-01T00:00:00.000000Z",
            }
            await client_redis.xadd("audit:dlq:events", {"message": orjson.dumps(ancient)})
            pg.start()
            wanted = {uuid.UUID(body["event_id"]) for body in good}

            async def settled() -> bool:
                stored = wanted <= set(await stored_ids(pg))
                return stored and int(await client_redis.xlen("audit:dlq:events")) == 0

            await wait_for(settled, 20, "the good entries to be stored and the queue emptied")
            dead = [
                orjson.loads(fields[b"message"])
                for _, fields in await client_redis.xrange("audit:dead-letter:events")
            ]
            assert len(dead) == 4
            reasons = {
                entry["payload"].get("event_id", "raw"): entry["last_error"] for entry in dead
            }
            assert "SQLSTATE 23514" in reasons[refused["payload"]["event_id"]]
            assert reasons[tired["payload"]["event_id"]] == "RuntimeError"
            assert reasons["raw"].startswith("undecodable")
            assert "no partition" in reasons[ancient["payload"]["event_id"]]
            assert set(await stored_ids(pg)) == wanted
            await client.get("/health")  # refreshes the DLQ gauges now
            metrics = (await client.get("/metrics")).text
            assert metric(metrics, "datastorage_dlq_dead_lettered_total") == 4
            assert metric(metrics, "datastorage_dlq_replayed_total") == 3
            assert metric(metrics, 'datastorage_dlq_dead_letters{stream="events"}') == 4
            assert metric(metrics, 'datastorage_dlq_depth{stream="events"}') == 0
    finally:
        await client_redis.aclose()


async def test_entries_held_by_a_dead_consumer_are_claimed_and_stored_once(
    outage_settings: Callable[..., Settings], pg: PrivatePostgres, redis_server: PrivateRedis
) -> None:
    app = create_app(outage_settings(dlq={"claim_idle_s": 0.5}))
    client_redis = redis.Redis.from_url(redis_server.url)
    try:
        async with running(app) as client:
            pg.stop()
            bodies = [event_body(event_id=str(uuid.uuid4())) for _ in range(3)]
            for body in bodies:
                assert (await client.post(SINGLE, json=body)).status_code == 202
            # Another replica reads the entries and dies before acknowledging them.
            taken = await client_redis.xreadgroup(
                "data-storage-retry-workers", "dead-replica", {"audit:dlq:events": ">"}
            )
            held = taken[0][1] if taken else []
            pg.start()
            wanted = {uuid.UUID(body["event_id"]) for body in bodies}

            async def settled() -> bool:
                done = wanted <= set(await stored_ids(pg))
                return done and int(await client_redis.xlen("audit:dlq:events")) == 0

            await wait_for(settled, 20, "the abandoned entries to be claimed and stored")
            pending = await client_redis.xpending("audit:dlq:events", "data-storage-retry-workers")
            assert pending["pending"] == 0
            ids = await stored_ids(pg)
            assert len(ids) == len(set(ids)) == 3
            if held:  # the drainer may have read some itself before the dead replica did
                metrics = (await client.get("/metrics")).text
                assert metric(metrics, "datastorage_dlq_replayed_total") == 3
    finally:
        await client_redis.aclose()
