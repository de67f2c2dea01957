"""GraphQL transport rules: GET for queries only, GraphiQL and introspection by mode, limits."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from datastorage.app import create_app
from datastorage.settings import Settings
from tests.conftest import running


async def test_queries_over_get_are_allowed_and_mutations_refused(
    client: httpx.AsyncClient,
) -> None:
    query = await client.get(
        "/graphql", params={"query": "{ auditEvents(first: 1) { pageInfo { hasNextPage } } }"}
    )
    assert query.status_code == 200
    assert "errors" not in query.json()
    mutation = await client.get(
        "/graphql", params={"query": "mutation { createAuditEvents(inputs: []) { __typename } }"}
    )
    assert mutation.status_code in (400, 405)
    assert "data" not in mutation.text or mutation.json().get("data") is None


async def test_development_serves_graphiql_and_introspection(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    schema = await client.post("/graphql", json={"query": "{ __schema { queryType { name } } }"})
    assert schema.json()["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_production_hides_graphiql_and_introspection(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(create_app(make_settings(service={"mode": "production"}))) as client:
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        assert "graphiql" not in page.text.lower()
        schema = await client.post(
            "/graphql", json={"query": "{ __schema { queryType { name } } }"}
        )
        body = schema.json()
        assert body.get("data") is None
        assert "introspection" in body["errors"][0]["message"].lower()


async def test_depth_alias_and_token_limits_answer_errors_not_500(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(graphql={"max_depth": 3, "max_aliases": 2, "max_tokens": 60})
    async with running(create_app(settings)) as client:
        deep = "{ auditEvents(first: 1) { edges { node { parentEvent { eventId } } } } }"
        aliases = '{ a: auditTimeline(correlationId: "x") { eventId } b: auditTimeline(correlationId: "y") { eventId } c: auditTimeline(correlationId: "z") { eventId } }'
        tokens = '{ auditTimeline(correlationId: "x") { ' + " ".join(["eventId"] * 80) + " } }"
        for query, word in ((deep, "depth"), (aliases, "alias"), (tokens, "token")):
            response = await client.post("/graphql", json={"query": query})
            assert response.status_code in (200, 400), response.text
            errors = response.json()["errors"]
            assert word in errors[0]["message"].lower(), errors
