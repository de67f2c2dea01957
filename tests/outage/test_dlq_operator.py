"""The operator surface: GraphQL `dlq`, `datastorage dlq status | replay-dead-letters`, and
notification records queued through an outage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable

import orjson
import redis.asyncio as redis

from datastorage.app import create_app
from datastorage.settings import Settings
from tests.conftest import event_body, running
from tests.outage.conftest import PrivatePostgres, PrivateRedis
from tests.outage.test_postgres_outage import stored_ids, wait_for

DLQ_QUERY = "{ dlq { available circuitBreaker streams { name depth capacity deadLetters } } }"


def cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "DATASTORAGE_REDIS_URL": redis_url,
           "DATASTORAGE_DLQ_MAX_LEN": "50"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "datastorage.cli", "dlq", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_graphql_and_cli_show_the_queue_and_dead_letters_can_be_replayed(
    outage_settings: Callable[..., Settings], pg: PrivatePostgres, redis_server: PrivateRedis
) -> None:
    app = create_app(outage_settings(dlq={"max_len": 50}))
    client_redis = redis.Redis.from_url(redis_server.url)
    try:
        async with running(app) as client:
            pg.stop()
            bodies = [event_body(event_id=str(uuid.uuid4())) for _ in range(2)]
            for body in bodies:
                assert (await client.post("/api/v1/audit/events", json=body)).status_code == 202
            answer = (await client.post("/graphql", json={"query": DLQ_QUERY})).json()
            dlq = answer["data"]["dlq"]
            assert dlq["available"] is True
            assert dlq["circuitBreaker"] in ("closed", "open", "half_open")
            events = next(s for s in dlq["streams"] if s["name"] == "events")
            assert (events["depth"], events["capacity"], events["deadLetters"]) == (2, 50, 0)

            status = cli(redis_server.url, "status", "--json")
            assert status.returncode == 0, status.stderr
            rows = {row["stream"]: row for row in json.loads(status.stdout)}
            assert rows["audit:dlq:events"]["depth"] == 2
            assert rows["audit:dlq:events"]["consumers"] >= 1

            # An operator's fix: a dead letter (refused earlier) replayed once the cause is gone.
            entries = await client_redis.xrange("audit:dlq:events", count=1)
            template = orjson.loads(entries[0][1][b"message"])
            dead = {**template, "retry_count": 6, "last_error": "SQLSTATE 23514"}
            dead["payload"] = {**template["payload"], "event_id": str(uuid.uuid4())}
            await client_redis.xadd("audit:dead-letter:events", {"message": orjson.dumps(dead)})
            await client_redis.xadd("audit:dead-letter:events", {"message": b"garbage"})
            revived = cli(redis_server.url, "replay-dead-letters", "--stream", "events")
            assert revived.returncode == 0, revived.stderr
            assert "1 moved back to audit:dlq:events, 1 undecodable left in place" in revived.stdout
            assert int(await client_redis.xlen("audit:dead-letter:events")) == 1

            pg.start()
            wanted = {uuid.UUID(b["event_id"]) for b in bodies}
            wanted.add(uuid.UUID(dead["payload"]["event_id"]))

            async def replayed() -> bool:
                return wanted <= set(await stored_ids(pg))

            await wait_for(replayed, 20, "the queue and the revived dead letter to be stored")
    finally:
        await client_redis.aclose()


async def test_notifications_queued_during_an_outage_are_stored_after(
    outage_settings: Callable[..., Settings], pg: PrivatePostgres, redis_server: PrivateRedis
) -> None:
    app = create_app(outage_settings())
    record = {
        "remediation_id": "rr-outage", "notification_id": f"n-{uuid.uuid4()}",
        "recipient": "ops@example.com", "channel": "slack", "message_summary": "db down",
        "status": "sent", "sent_at": "2026-11-26T10:00:00Z",
    }  # fmt: skip
    async with running(app) as client:
        pg.stop()
        answer = await client.post("/api/v1/audit/notifications", json=record)
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "accepted"
        pg.start()

        async def stored() -> bool:
            text = pg.psql(
                "outage",
                "SELECT count(*) FROM notification_audit WHERE notification_id = "
                f"'{record['notification_id']}'",
            )
            return text == "1"

        await wait_for(stored, 20, "the notification record to be replayed")
        again = await client.post("/api/v1/audit/notifications", json=record)
        assert again.status_code == 409


async def test_dlq_status_says_unavailable_without_redis(
    outage_settings: Callable[..., Settings],
) -> None:
    app = create_app(outage_settings(redis={"url": None}))
    async with running(app) as client:
        answer = (await client.post("/graphql", json={"query": DLQ_QUERY})).json()
    assert answer["data"]["dlq"] == {"available": False, "circuitBreaker": "closed", "streams": []}
