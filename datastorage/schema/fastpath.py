"""A compiled execution path for the hot queries: audit events and workflow search.

Executing through graphql-core costs about 5 µs per field (50 µs for a 10-field object), which
puts a page of 50 events at a few hundred requests per second. Most dashboard traffic is a
handful of query shapes over `auditEvents`, `auditEvent` and `auditTimeline`, and incident
tooling asks `searchWorkflows` on every alert, so those are compiled once per query text: the
document is parsed and validated against the real schema, its selection is turned into a
generated projection function, and each request then coerces variables, calls the same
resolver functions as the Strawberry fields, and serialises with orjson.

Anything outside those shapes (other fields, directives, introspection, errors, the
`ValidationFailed` member of the search union) returns
None and the request goes through Strawberry unchanged, so the two paths cannot disagree on
anything but speed; tests compare their outputs for the supported shapes.
"""

from __future__ import annotations

import collections
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    parse,
    validate,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values

from datastorage.domain import AuditEventRecord, Keyset
from datastorage.resolvers import audit, workflow_search
from datastorage.resolvers.audit_queries import encode_cursor
from datastorage.resolvers.context import Context
from datastorage.resolvers.errors import DomainError
from datastorage.schema.allowlist import document_hash
from datastorage.schema.audit import load_audit_events, load_timeline, parse_id
from datastorage.schema.audit_types import AuditEventFilterInput
from datastorage.schema.compiled_search import SearchShape, search_shape
from datastorage.schema.compiled_shapes import (
    ConnectionShape,
    EventShape,
    Unsupported,
    collect_fields,
    connection_shape,
    count_aliases,
    event_shape,
    first_node,
    operation_of,
    selection_depth,
)
from datastorage.schema.workflow_search import WorkflowSearchInput

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _RootField:
    key: str
    name: str
    node: FieldNode
    shape: ConnectionShape | EventShape | SearchShape | None  # None for __typename


@dataclass(frozen=True, slots=True)
class _Plan:
    operation: OperationDefinitionNode
    fields: list[_RootField]


class FastPath:
    """Compiles and runs the supported query shapes; `None` means "let Strawberry do it"."""

    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        cache_size: int,
        max_tokens: int,
        max_aliases: int,
        max_depth: int,
        allowed: frozenset[str] | None = None,
    ) -> None:
        self._schema = schema
        self._allowed = allowed
        self._max_depth = max_depth
        self._cache_size = cache_size
        self._max_tokens = max_tokens
        self._max_aliases = max_aliases
        self._plans: collections.OrderedDict[tuple[str, str | None], _Plan | None] = (
            collections.OrderedDict()
        )
        self._query_type = schema.query_type

    async def execute(self, body: Any, ctx: Context) -> bytes | None:
        """The JSON response for `body`, or None when this path does not handle it."""
        if not isinstance(body, dict):
            return None
        query, operation_name = body.get("query"), body.get("operationName")
        variables = body.get("variables") or {}
        if not isinstance(query, str) or not isinstance(variables, dict):
            return None
        if operation_name is not None and not isinstance(operation_name, str):
            return None
        plan = self._plan(query, operation_name)
        if plan is None:
            return None
        coerced = get_variable_values(
            self._schema, plan.operation.variable_definitions or (), variables
        )
        if not isinstance(coerced, VariableValues):
            return None  # Strawberry reports the variable errors in its own format
        try:
            data = {field.key: await self._resolve(field, coerced, ctx) for field in plan.fields}
        except DomainError:
            return None  # expected errors are rendered by Strawberry, identically to the slow path
        except Exception:
            # Strawberry re-runs the operation and masks the error as it does for every field.
            log.exception("compiled GraphQL execution failed; falling back to Strawberry")
            return None
        name = plan.operation.name.value if plan.operation.name else "anonymous"
        ctx.services.metrics.graphql_operations.labels(name[:100], "success").inc()
        return orjson.dumps({"data": data})

    def _plan(self, query: str, operation_name: str | None) -> _Plan | None:
        key = (query, operation_name)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        try:
            plan: _Plan | None = self._compile(query, operation_name)
        except (Unsupported, GraphQLError):
            plan = None
        self._plans[key] = plan
        if len(self._plans) > self._cache_size:
            self._plans.popitem(last=False)
        return plan

    def _compile(self, query: str, operation_name: str | None) -> _Plan:
        if self._allowed is not None and document_hash(query) not in self._allowed:
            raise Unsupported("not in the allow-list")  # Strawberry answers the refusal
        document = parse(query, no_location=True, max_tokens=self._max_tokens)
        if validate(self._schema, document):
            raise Unsupported("invalid document")
        operation = operation_of(document, operation_name)
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        if count_aliases(document) > self._max_aliases:
            raise Unsupported("too many aliases")
        if selection_depth(operation.selection_set, fragments) > self._max_depth:
            raise Unsupported("too deep")
        fields = []
        for key, nodes in collect_fields(operation.selection_set, fragments, "Query").items():
            node = first_node(nodes)
            name = node.name.value
            if name == "__typename":
                fields.append(_RootField(key, name, node, None))
            elif name == "auditEvents":
                fields.append(_RootField(key, name, node, connection_shape(nodes, fragments)))
            elif name in ("auditEvent", "auditTimeline"):
                fields.append(_RootField(key, name, node, event_shape(nodes, fragments, depth=0)))
            elif name == "searchWorkflows":
                fields.append(_RootField(key, name, node, search_shape(nodes, fragments)))
            else:
                raise Unsupported(name)
        return _Plan(operation, fields)

    async def _resolve(self, field: _RootField, variables: VariableValues, ctx: Context) -> Any:
        if field.shape is None:
            return "Query"
        assert self._query_type is not None
        arguments = get_argument_values(self._query_type.fields[field.name], field.node, variables)
        if field.name == "auditEvents":
            assert isinstance(field.shape, ConnectionShape)
            return await _run_connection(field.shape, arguments, ctx)
        if field.name == "searchWorkflows":
            assert isinstance(field.shape, SearchShape)
            search = WorkflowSearchInput.from_coerced(arguments["input"])
            # A refused search raises ValidationFailed: Strawberry answers it (union member).
            outcome = await workflow_search.search_workflows(ctx, search.to_body())
            return field.shape.project(outcome)
        assert isinstance(field.shape, EventShape)
        if field.name == "auditEvent":
            record = await audit.get_event(ctx, parse_id(arguments["eventId"], "eventId"))
            records = [] if record is None else [record]
            projected = await _project_all(field.shape, records, ctx)
            return projected[0] if projected else None
        return await _project_all(
            field.shape, await load_timeline(ctx, arguments["correlationId"]), ctx
        )


async def _run_connection(
    shape: ConnectionShape, arguments: dict[str, Any], ctx: Context
) -> dict[str, Any]:
    raw_filter = arguments.get("filter")
    filter_input = AuditEventFilterInput.from_coerced(raw_filter) if raw_filter else None
    page, filters = await load_audit_events(
        ctx, filter_input, arguments["first"], arguments.get("after")
    )
    nodes = await _project_all(shape.node, page.events, ctx) if shape.node else []
    cursors = (
        [_cursor(record) for record in page.events]
        if _wants(shape.edge_keys, "cursor") or _wants(shape.page_info_keys, "endCursor")
        else []
    )
    result: dict[str, Any] = {}
    for key, name in shape.keys:
        if name == "edges":
            result[key] = [
                _edge(shape.edge_keys, nodes, cursors, index) for index in range(len(page.events))
            ]
        elif name == "pageInfo":
            result[key] = _page_info(
                shape.page_info_keys, page.has_more, cursors[-1] if cursors else None
            )
        elif name == "totalCount":
            result[key] = await audit.count_events(ctx, filters)
        else:
            result[key] = "AuditEventConnection"
    return result


def _edge(
    keys: list[tuple[str, str]], nodes: list[dict[str, Any]], cursors: list[str], index: int
) -> dict[str, Any]:
    edge: dict[str, Any] = {}
    for key, name in keys:
        if name == "node":
            edge[key] = nodes[index]
        elif name == "cursor":
            edge[key] = cursors[index]
        else:
            edge[key] = "AuditEventEdge"
    return edge


def _page_info(
    keys: list[tuple[str, str]], has_next: bool, end_cursor: str | None
) -> dict[str, Any]:
    values = {"hasNextPage": has_next, "endCursor": end_cursor, "__typename": "PageInfo"}
    return {key: values[name] for key, name in keys}


def _cursor(record: AuditEventRecord) -> str:
    return encode_cursor(Keyset(record.event_timestamp, record.event_id))


def _wants(keys: Iterable[tuple[str, str]], name: str) -> bool:
    return any(field == name for _, field in keys)


async def _project_all(
    shape: EventShape, records: list[AuditEventRecord], ctx: Context
) -> list[dict[str, Any]]:
    parents: Mapping[uuid.UUID, AuditEventRecord] = {}
    if shape.wants_parents:
        wanted = list({r.parent_event_id for r in records if r.parent_event_id is not None})
        # One statement for every parent of the page, like the DataLoader of the slow path.
        found = await audit.get_events(ctx, wanted) if wanted else []
        parents = {record.event_id: record for record in found if record is not None}
    project = shape.project
    return [project(record, parents) for record in records]
