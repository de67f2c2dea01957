"""The compiled `searchWorkflows` answers exactly what Strawberry answers, and leaves it the rest."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from datastorage.resolvers.context import Context
from tests.integration.test_workflow_search import create, signal

MATCH_FIELDS = """
  workflowId workflowName version title description signalType containerImage containerDigest
  confidence labelBoost labelPenalty finalScore rank customLabels detectedLabels parameters
  __typename
"""
BREAKDOWN = "scoreBreakdown { label kind weight reason source __typename }"

SEARCHES = [
    # every field, the breakdown, both union branches selected
    f"""query S($input: WorkflowSearchInput!) {{ searchWorkflows(input: $input) {{ __typename
        ... on WorkflowSearchResponse {{ totalResults filters __typename
              workflows {{ {MATCH_FIELDS} {BREAKDOWN} }} }}
        ... on ValidationFailed {{ message }} }} }}""",
    # aliases, a named fragment, a fragment on the union itself
    """query S($input: WorkflowSearchInput!) { found: searchWorkflows(input: $input) {
        ... on WorkflowSearchResult { kind: __typename }
        ...Answer } }
      fragment Answer on WorkflowSearchResponse {
        n: totalResults best: workflows { id: workflowId score: finalScore rank
          why: scoreBreakdown { label weight } } }""",
    # two searches in one document, one of them with only the count
    """query S($input: WorkflowSearchInput!) {
        a: searchWorkflows(input: $input) { ... on WorkflowSearchResponse { totalResults } }
        b: searchWorkflows(input: $input) {
          ... on WorkflowSearchResponse { workflows { rank workflowName } } } }""",
    # the same list twice under aliases, selected differently
    """query S($input: WorkflowSearchInput!) { searchWorkflows(input: $input) {
        ... on WorkflowSearchResponse { short: workflows { rank }
          long: workflows { workflowId scoreBreakdown { label kind } } } } }""",
]


async def _seed(client: httpx.AsyncClient) -> str:
    kind = signal()
    await create(
        client,
        kind,
        detected_labels={"gitOpsManaged": True, "gitOpsTool": "argocd", "pdbProtected": True},
        custom_labels={"team": ["payments"], "tier": ["*"]},
        parameters={"FACTOR": {"type": "number", "required": True, "default": 1.25}},
    )
    await create(client, kind, detected_labels={"serviceMesh": "*"})
    await create(client, kind, detected_labels={"gitOpsManaged": False})
    await create(client, kind, container_image="quay.io/acme/fix:1.2")
    return kind


def _input(kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "filters": {
            "signalType": kind,
            "severity": "CRITICAL",
            "component": "pod",
            "environment": "production",
            "priority": "P0",
            "detectedLabels": {
                "gitOpsManaged": True,
                "gitOpsTool": "argocd",
                "serviceMesh": "istio",
                "failedDetections": ["pdbProtected"],
            },
            "customLabels": {"team": ["payments"], "tier": ["gold"]},
            "status": ["ACTIVE"],
        },
        "topK": 3,
        "remediationId": "rr-contract",
        **extra,
    }


async def _strawberry(app: Starlette, query: str, variables: dict[str, Any]) -> Any:
    result = await app.state.schema.execute(
        query, variable_values=variables, context_value=Context(services=app.state.services)
    )
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    return orjson.loads(orjson.dumps(body))


async def _found(client: httpx.AsyncClient, kind: str) -> None:
    # The index takes new workflows from their NOTIFY; wait until all four are searchable.
    for _ in range(100):
        answer = await client.post(
            "/api/v1/workflows/search",
            json={"filters": {"signal_type": kind, "severity": "critical", "component": "pod",
                              "environment": "production", "priority": "P0"}},
        )  # fmt: skip
        if answer.json()["total_results"] == 4:
            return
    raise AssertionError("the seeded workflows never became searchable")


@pytest.mark.parametrize("query", SEARCHES)
async def test_compiled_search_equals_strawberry(
    app: Starlette, client: httpx.AsyncClient, query: str
) -> None:
    kind = await _seed(client)
    await _found(client, kind)
    for variables in ({"input": _input(kind)}, {"input": _input(kind, topK=1, minScore=0.1)}):
        compiled = await app.state.fast_path.execute(
            {"query": query, "variables": variables}, Context(services=app.state.services)
        )
        assert compiled is not None, "not compiled"
        expected = await _strawberry(app, query, variables)
        assert "errors" not in expected, expected
        assert orjson.loads(compiled) == expected
        over_http = await client.post("/graphql", json={"query": query, "variables": variables})
        assert over_http.json() == expected
    # The answer is not vacuous: matches, ranked, with their scores.
    document = orjson.loads(compiled)
    assert document != {"data": None}


async def test_compiled_search_ranks_and_scores_like_rest(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    kind = await _seed(client)
    await _found(client, kind)
    compiled = await app.state.fast_path.execute(
        {"query": SEARCHES[0], "variables": {"input": _input(kind, topK=10)}},
        Context(services=app.state.services),
    )
    assert compiled is not None
    answer = orjson.loads(compiled)["data"]["searchWorkflows"]
    rest = (
        await client.post(
            "/api/v1/workflows/search",
            json={
                "filters": {
                    "signal_type": kind, "severity": "critical", "component": "pod",
                    "environment": "production", "priority": "P0",
                    "detected_labels": {"gitOpsManaged": True, "gitOpsTool": "argocd",
                                        "serviceMesh": "istio",
                                        "failed_detections": ["pdbProtected"]},
                    "custom_labels": {"team": ["payments"], "tier": ["gold"]},
                    "status": ["active"],
                },
                "top_k": 10,
            },
        )
    ).json()  # fmt: skip
    assert answer["totalResults"] == rest["total_results"] == 4
    assert [(m["workflowId"], m["rank"], m["finalScore"]) for m in answer["workflows"]] == [
        (m["workflow_id"], m["rank"], m["final_score"]) for m in rest["workflows"]
    ]
    assert answer["workflows"][0]["parameters"] == rest["workflows"][0]["parameters"]


async def test_a_refused_search_is_left_to_strawberry(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    variables = {"input": {**_input(signal()), "topK": 0}}
    ctx = Context(services=app.state.services)
    assert (
        await app.state.fast_path.execute({"query": SEARCHES[0], "variables": variables}, ctx)
        is None
    )
    answer = await client.post("/graphql", json={"query": SEARCHES[0], "variables": variables})
    data = answer.json()["data"]["searchWorkflows"]
    assert data["__typename"] == "ValidationFailed"
    assert "top_k" in data["message"] or "topK" in data["message"]
