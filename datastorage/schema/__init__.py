"""The Strawberry schema: Query, Mutation and the execution-level extensions."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.disable_introspection import DisableIntrospection
from strawberry.schema.config import StrawberryConfig

from datastorage.resolvers.errors import DomainError
from datastorage.schema.allowlist import allowlist_rule
from datastorage.schema.audit import AuditMutation, AuditQuery
from datastorage.schema.audit_types import LONG_SCALAR, Long
from datastorage.schema.dlq import DlqQuery
from datastorage.schema.notifications import NotificationMutation
from datastorage.schema.observe import OperationMetrics
from datastorage.schema.workflow_search import WorkflowSearchQuery
from datastorage.schema.workflows import WorkflowMutation, WorkflowQuery
from datastorage.settings import Settings


@strawberry.type
class Query(AuditQuery, DlqQuery, WorkflowQuery, WorkflowSearchQuery):
    pass


@strawberry.type
class Mutation(AuditMutation, NotificationMutation, WorkflowMutation):
    pass


def _should_mask(error: GraphQLError) -> bool:
    # Domain errors carry messages written for clients; anything else may hold internals.
    original = error.original_error
    return original is not None and not isinstance(original, DomainError)


def build_schema(settings: Settings, allowed: frozenset[str] | None = None) -> strawberry.Schema:
    """The schema with bounded caches and limits; no per-field extensions (they cost per field)."""
    limits = settings.graphql
    # Factories: a fresh extension per operation; the parse/validation LRU caches are shared.
    # The depth and alias rules are built once: each limiter instance makes new validation rule
    # classes, and new classes per request made every ValidationCache lookup miss
    # (measured: searchWorkflows 174 → 535 req/s with the cache hitting).
    limit_rules = [
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
    ]
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        lambda: ParserCache(maxsize=limits.cache_size),
        lambda: ValidationCache(maxsize=limits.cache_size),
        lambda: AddValidationRules(limit_rules),
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: MaskErrors(should_mask_error=_should_mask, error_message="Internal error."),
        OperationMetrics,
    ]
    if not settings.introspection_enabled:
        extensions.append(DisableIntrospection)
    if allowed is not None:
        rule = allowlist_rule(allowed)
        extensions.append(lambda: AddValidationRules([rule]))
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True, scalar_map={Long: LONG_SCALAR}),
    )
