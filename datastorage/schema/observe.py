"""Counts GraphQL operations by name and outcome (once per operation, never per field)."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension


class OperationMetrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context
        services = getattr(context.context, "services", None)
        if services is None:
            return
        name = context.operation_name or "anonymous"
        result = context.result
        outcome = "error" if result is None or getattr(result, "errors", None) else "success"
        services.metrics.graphql_operations.labels(name[:100], outcome).inc()
