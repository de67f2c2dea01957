"""Compiling a GraphQL selection into shapes and generated projection functions.

Used by `fastpath`: a validated document over the hot audit fields becomes a tree of shapes; each
selection on `AuditEvent` becomes one generated function that builds the response object from a
stored record in a single dict display. Anything outside the supported shapes raises
`Unsupported`, and the caller lets Strawberry execute the document instead.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)

from datastorage.domain import AuditEventRecord
from datastorage.schema.audit_types import EventOutcome

_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")


# AuditEvent scalar fields → an expression over the record `r`, serialised as Strawberry would.
_EVENT_FIELDS: dict[str, str] = {
    "eventId": "str(r.event_id)",
    "version": "r.event_version",
    "eventType": "r.event_type",
    "eventTimestamp": "r.event_timestamp.isoformat()",
    "eventDate": "r.event_date.isoformat()",
    "eventCategory": "r.event_category",
    "eventAction": "r.event_action",
    "eventOutcome": "OUTCOME_NAMES[r.event_outcome]",
    "actorType": "r.actor_type",
    "actorId": "r.actor_id",
    "actorIp": "r.actor_ip",
    "resourceType": "r.resource_type",
    "resourceId": "r.resource_id",
    "resourceName": "r.resource_name",
    "correlationId": "r.correlation_id",
    "parentEventId": "(None if r.parent_event_id is None else str(r.parent_event_id))",
    "namespace": "r.namespace",
    "clusterName": "r.cluster_name",
    "clusterId": "r.cluster_name",
    "severity": "r.severity",
    "durationMs": "r.duration_ms",
    "errorCode": "r.error_code",
    "errorMessage": "r.error_message",
    "retentionDays": "r.retention_days",
    "isSensitive": "r.is_sensitive",
    "eventData": "Fragment(r.event_data_json)",
    "traceId": "r.trace_id",
    "spanId": "r.span_id",
    "chainSeq": "r.chain_seq",
    "eventHash": "r.event_hash",
    "previousEventHash": "r.previous_event_hash",
    "hashAlgorithm": "r.hash_algorithm",
    "legalHold": "r.legal_hold",
    "legalHoldReason": "r.legal_hold_reason",
    "legalHoldPlacedBy": "r.legal_hold_placed_by",
    "legalHoldPlacedAt": "(None if r.legal_hold_placed_at is None else r.legal_hold_placed_at.isoformat())",
    "ingestedAt": "r.ingested_at.isoformat()",
    "__typename": "'AuditEvent'",
}


# GraphQL enums serialise by name: "success" is SUCCESS.
_OUTCOME_NAMES = {member.value: member.name for member in EventOutcome}


class Unsupported(Exception):
    """The document is outside the compiled shapes; Strawberry executes it."""


Projection = Callable[[AuditEventRecord, Mapping[uuid.UUID, AuditEventRecord]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class EventShape:
    project: Projection
    wants_parents: bool


@dataclass(frozen=True, slots=True)
class ConnectionShape:
    keys: list[tuple[str, str]]  # (response key, field): edges, pageInfo, totalCount, __typename
    edge_keys: list[tuple[str, str]]  # (response key, field): cursor, node, __typename
    page_info_keys: list[tuple[str, str]]
    node: EventShape | None


def operation_of(document: DocumentNode, name: str | None) -> OperationDefinitionNode:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        operations = [op for op in operations if op.name is not None and op.name.value == name]
    if len(operations) != 1 or operations[0].operation is not OperationType.QUERY:
        raise Unsupported("not exactly one query operation")
    return operations[0]


def collect_fields(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    type_name: str,
    *,
    also: frozenset[str] = frozenset(),
    skip: frozenset[str] = frozenset(),
) -> dict[str, list[FieldNode]]:
    """Response key → field nodes, in selection order, expanding fragments on `type_name`.

    For a union: fragments on the union itself (`also`) are expanded too, fragments on the
    member types in `skip` are left out (their branch is not the one being compiled).
    """
    collected: dict[str, list[FieldNode]] = {}
    if selection_set is None:
        return collected
    for selection in selection_set.selections:
        if selection.directives:
            raise Unsupported("directives")
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            if not _NAME.match(key):
                raise Unsupported("unexpected name")
            collected.setdefault(key, []).append(selection)
            continue
        if isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            inner = selection.selection_set
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments[selection.name.value]
            if fragment.directives:
                raise Unsupported("directives")
            condition, inner = fragment.type_condition, fragment.selection_set
        else:
            raise Unsupported("selection kind")
        if condition is not None and condition.name.value in skip:
            continue
        if condition is not None and condition.name.value not in also | {type_name}:
            raise Unsupported("fragment on another type")
        for key, nodes in collect_fields(inner, fragments, type_name, also=also, skip=skip).items():
            collected.setdefault(key, []).extend(nodes)
    return collected


def merged(nodes: list[FieldNode]) -> SelectionSetNode:
    selections = [
        selection
        for node in nodes
        if node.selection_set
        for selection in node.selection_set.selections
    ]
    return SelectionSetNode(selections=tuple(selections))


def first_node(nodes: list[FieldNode]) -> FieldNode:
    # Validation guarantees same-key fields are the same field with the same arguments.
    return nodes[0]


def connection_shape(
    nodes: list[FieldNode], fragments: dict[str, FragmentDefinitionNode]
) -> ConnectionShape:
    keys: list[tuple[str, str]] = []
    edge_keys: list[tuple[str, str]] = []
    page_info_keys: list[tuple[str, str]] = []
    node_shape: EventShape | None = None
    for key, children in collect_fields(merged(nodes), fragments, "AuditEventConnection").items():
        name = children[0].name.value
        keys.append((key, name))
        if name == "edges":
            for edge_key, edge_children in collect_fields(
                merged(children), fragments, "AuditEventEdge"
            ).items():
                edge_name = edge_children[0].name.value
                edge_keys.append((edge_key, edge_name))
                if edge_name == "node":
                    if node_shape is not None:
                        raise Unsupported("node selected under two keys")
                    node_shape = event_shape(edge_children, fragments, depth=0)
        elif name == "pageInfo":
            page_info_keys = [
                (info_key, info_nodes[0].name.value)
                for info_key, info_nodes in collect_fields(
                    merged(children), fragments, "PageInfo"
                ).items()
            ]
        elif name not in ("totalCount", "__typename"):
            raise Unsupported(name)
    return ConnectionShape(keys, edge_keys, page_info_keys, node_shape)


def event_shape(
    nodes: list[FieldNode], fragments: dict[str, FragmentDefinitionNode], *, depth: int
) -> EventShape:
    entries: list[str] = []
    namespace: dict[str, Any] = {"Fragment": orjson.Fragment, "OUTCOME_NAMES": _OUTCOME_NAMES}
    wants_parents = False
    for key, children in collect_fields(merged(nodes), fragments, "AuditEvent").items():
        name = children[0].name.value
        if name == "parentEvent":
            if depth > 0:
                raise Unsupported("nested parentEvent")
            parent = event_shape(children, fragments, depth=depth + 1)
            namespace[f"parent_{len(entries)}"] = parent.project
            expression = (
                f"(None if r.parent_event_id is None or r.parent_event_id not in parents "
                f"else parent_{len(entries)}(parents[r.parent_event_id], parents))"
            )
            wants_parents = True
        elif name in _EVENT_FIELDS:
            expression = _EVENT_FIELDS[name]
        else:
            raise Unsupported(name)
        entries.append(f"{key!r}: {expression}")
    source = "def project(r, parents):\n    return {" + ", ".join(entries) + "}\n"
    # The source is built from validated GraphQL names and the fixed table above, never from values.
    exec(compile(source, "<graphql-projection>", "exec"), namespace)  # noqa: S102
    return EventShape(project=namespace["project"], wants_parents=wants_parents)


def count_aliases(document: DocumentNode) -> int:
    count = 0
    stack: list[Any] = list(document.definitions)
    while stack:
        node = stack.pop()
        if isinstance(node, FieldNode) and node.alias is not None:
            count += 1
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)
    return count


def selection_depth(
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode]
) -> int:
    """Field nesting depth with fragments expanded (the depth limiter's measure)."""
    if selection_set is None:
        return 0
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            deepest = max(
                deepest,
                1 + selection_depth(selection.selection_set, fragments)
                if selection.selection_set
                else 0,
            )
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, selection_depth(selection.selection_set, fragments))
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
            deepest = max(
                deepest, selection_depth(fragments[selection.name.value].selection_set, fragments)
            )
    return deepest
