"""The persisted-query allow-list: only registered documents run, on every path."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from datastorage.app import create_app
from datastorage.settings import Settings, SettingsError
from tests.conftest import running

PAGE = (
    "query Page { auditEvents(first: 2) { edges { node { eventId } } pageInfo { hasNextPage } } }"
)
TIMELINE = 'query Timeline { auditTimeline(correlationId: "rr-1") { chainSeq } }'
OTHER = "{ auditEvents(first: 1) { totalCount } }"
MUTATION = "mutation { createAuditEvents(inputs: []) { __typename } }"


@pytest.mark.parametrize("shape", ["list", "object"])
async def test_only_listed_documents_run(
    make_settings: Callable[..., Settings], tmp_path: Path, shape: str
) -> None:
    listed = [PAGE, TIMELINE]
    content = (
        listed if shape == "list" else {hashlib.sha256(q.encode()).hexdigest(): q for q in listed}
    )
    path = tmp_path / "allowlist.json"
    path.write_text(json.dumps(content))
    async with running(create_app(make_settings(graphql={"allowlist_file": str(path)}))) as client:
        for query in listed:
            answer = (await client.post("/graphql", json={"query": query})).json()
            assert "errors" not in answer, answer
        for query in (OTHER, MUTATION, PAGE.replace("first: 2", "first: 3")):
            answer = (await client.post("/graphql", json={"query": query})).json()
            assert answer.get("data") is None
            assert "allow-list" in answer["errors"][0]["message"]
        over_get = (await client.get("/graphql", params={"query": OTHER})).json()
        assert "allow-list" in over_get["errors"][0]["message"]


def test_a_wrong_hash_stops_start_up(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path = tmp_path / "allowlist.json"
    path.write_text(json.dumps({"0" * 64: PAGE}))
    with pytest.raises(
        SettingsError, match=r"DATASTORAGE_GRAPHQL_ALLOWLIST_FILE: .*not the SHA-256"
    ):
        create_app(make_settings(graphql={"allowlist_file": str(path)}))
