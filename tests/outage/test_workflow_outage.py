"""The catalog during a PostgreSQL outage: searches go on from the loaded index."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from datastorage.app import create_app
from datastorage.settings import Settings
from tests.conftest import running
from tests.integration.test_workflow_search import create, filters, signal
from tests.outage.conftest import PrivatePostgres


async def test_searches_are_served_from_the_loaded_index_while_postgres_is_down(
    outage_settings: Callable[..., Settings], pg: PrivatePostgres
) -> None:
    app = create_app(outage_settings())
    async with running(app) as client:
        kind = signal()
        workflow_id = await create(client, kind)
        found = await client.post("/api/v1/workflows/search", json={"filters": filters(kind)})
        assert [r["workflow_id"] for r in found.json()["workflows"]] == [workflow_id]
        pg.stop()
        await asyncio.sleep(2.5)  # the listener is gone and the index is older than it trusts
        for _ in range(3):
            found = await client.post("/api/v1/workflows/search", json={"filters": filters(kind)})
            assert found.status_code == 200, found.text
            assert [r["workflow_id"] for r in found.json()["workflows"]] == [workflow_id]
        # Catalog writes cannot be queued: they are refused, and nothing changes.
        refused = await client.post("/api/v1/workflows", json={"workflow_name": "x"})
        assert refused.status_code in (400, 503)
        pg.start()


async def test_a_search_before_any_load_is_503_while_postgres_is_down(
    outage_settings: Callable[..., Settings], pg: PrivatePostgres
) -> None:
    app = create_app(outage_settings())
    async with running(app) as client:
        pg.stop()
        answer = await client.post("/api/v1/workflows/search", json={"filters": filters("X")})
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["retry-after"]) >= 1
        assert "asyncpg" not in answer.text
        pg.start()
