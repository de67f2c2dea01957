"""Compiling a `searchWorkflows` selection into a generated projection (see `fastpath`).

A search answers ten or so matches of a dozen fields each; executed by graphql-core that is a
millisecond of field resolution per request, four times the search itself. The selection on
`WorkflowSearchResponse` and `WorkflowMatch` is compiled once per query text into functions
that build the response in dict displays. Only a successful search is answered here: the
`ValidationFailed` branch of the union is left to Strawberry (the caller returns None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import FieldNode, FragmentDefinitionNode

from datastorage.resolvers.workflow_search import SearchOutcome
from datastorage.schema.compiled_shapes import Unsupported, collect_fields, merged

# WorkflowMatch fields → an expression over the match `m`, serialised as Strawberry would
# (Float fields through float(): graphql-core writes an int score as 1.0, orjson as 1).
_MATCH_FIELDS: dict[str, str] = {
    "workflowId": "str(m.ranked.workflow_id)",
    "workflowName": "m.workflow.workflow_name",
    "version": "m.workflow.version",
    "title": "m.workflow.title",
    "description": "(m.workflow.description or '')",
    "signalType": "str(m.workflow.labels.get('signal_type', ''))",
    "containerImage": "m.workflow.container_image",
    "containerDigest": "m.workflow.container_digest",
    "confidence": "float(m.ranked.confidence)",
    "labelBoost": "float(m.ranked.label_boost)",
    "labelPenalty": "float(m.ranked.label_penalty)",
    "finalScore": "float(m.ranked.final_score)",
    "rank": "m.ranked.rank",
    "customLabels": "m.workflow.custom_labels",
    "detectedLabels": "m.workflow.detected_labels",
    "parameters": "(Fragment(m.workflow.parameters_json) if m.workflow.parameters_json else None)",
    "__typename": "'WorkflowMatch'",
}
_CONTRIBUTION_FIELDS: dict[str, str] = {
    "label": "c.label",
    "kind": "c.kind",
    "weight": "float(c.weight)",
    "reason": "c.reason",
    "source": "c.source",
    "__typename": "'ScoreContribution'",
}
_RESPONSE_FIELDS: dict[str, str] = {
    "totalResults": "o.total_results",
    "filters": "o.filters",
    "__typename": "'WorkflowSearchResponse'",
}
_UNION = frozenset({"WorkflowSearchResult"})
_RESPONSE = "WorkflowSearchResponse"
_VALIDATION_FAILED = frozenset({"ValidationFailed"})


@dataclass(frozen=True, slots=True)
class SearchShape:
    project: Callable[[SearchOutcome], dict[str, Any]]


def search_shape(
    nodes: list[FieldNode], fragments: dict[str, FragmentDefinitionNode]
) -> SearchShape:
    """The projection of a successful search for the selection `nodes` of `searchWorkflows`."""
    # Generated helpers, one per selection (two aliases of `workflows` may select differently).
    helpers: dict[str, Any] = {"Fragment": orjson.Fragment}
    entries = []
    selected = collect_fields(
        merged(nodes), fragments, _RESPONSE, also=_UNION, skip=_VALIDATION_FAILED
    )
    for key, children in selected.items():
        name = children[0].name.value
        if name == "workflows":
            matches = [
                (match_key, _match_expression(match_nodes, fragments, helpers))
                for match_key, match_nodes in collect_fields(
                    merged(children), fragments, "WorkflowMatch"
                ).items()
            ]
            helper = f"match_{len(helpers)}"
            helpers[helper] = _generated("m", matches, helpers)
            expression = f"[{helper}(m) for m in o.matches]"
        elif name in _RESPONSE_FIELDS:
            expression = _RESPONSE_FIELDS[name]
        else:
            raise Unsupported(name)
        entries.append((key, expression))
    return SearchShape(project=_generated("o", entries, helpers))


def _match_expression(
    nodes: list[FieldNode], fragments: dict[str, FragmentDefinitionNode], helpers: dict[str, Any]
) -> str:
    name = nodes[0].name.value
    if name != "scoreBreakdown":
        return _known(_MATCH_FIELDS, name)
    parts = [
        (part_key, _known(_CONTRIBUTION_FIELDS, part_nodes[0].name.value))
        for part_key, part_nodes in collect_fields(
            merged(nodes), fragments, "ScoreContribution"
        ).items()
    ]
    helper = f"contribution_{len(helpers)}"
    helpers[helper] = _generated("c", parts, helpers)
    return f"[{helper}(c) for c in m.ranked.breakdown]"


def _known(table: dict[str, str], name: str) -> str:
    if name not in table:
        raise Unsupported(name)
    return table[name]


def _generated(
    argument: str, entries: list[tuple[str, str]], helpers: dict[str, Any]
) -> Callable[[Any], dict[str, Any]]:
    scope = dict(helpers)
    body = ", ".join(f"{key!r}: {expression}" for key, expression in entries)
    source = f"def project({argument}):\n    return {{{body}}}\n"
    # The source is built from validated GraphQL names and the fixed tables above, never values.
    exec(compile(source, "<graphql-search-projection>", "exec"), scope)  # noqa: S102
    function: Callable[[Any], dict[str, Any]] = scope["project"]
    return function
