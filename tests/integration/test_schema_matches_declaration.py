"""The SQL migrations produce exactly the tables declared in persistence/tables.py."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import create_async_engine

from datastorage.persistence.tables import metadata


def _ddl(column_type: Any) -> str:
    """The type as PostgreSQL DDL, e.g. VARCHAR(20) or TIMESTAMP WITH TIME ZONE."""
    return str(column_type.compile(dialect=postgresql.dialect()))


@pytest.mark.usefixtures("app")
async def test_migrated_tables_match_the_declaration(database_url: str) -> None:
    engine = create_async_engine(database_url.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with engine.connect() as connection:
            reflected = await connection.run_sync(
                lambda sync: {
                    table.name: {c["name"]: c for c in inspect(sync).get_columns(table.name)}
                    for table in metadata.sorted_tables
                }
            )
            primary_keys = await connection.run_sync(
                lambda sync: {
                    table.name: inspect(sync).get_pk_constraint(table.name)["constrained_columns"]
                    for table in metadata.sorted_tables
                }
            )
    finally:
        await engine.dispose()
    for table in metadata.sorted_tables:
        columns = reflected[table.name]
        assert list(columns) == [c.name for c in table.columns], table.name
        for column in table.columns:
            actual = columns[column.name]
            assert actual["nullable"] == column.nullable, f"{table.name}.{column.name} nullability"
            assert _ddl(actual["type"]) == _ddl(column.type), f"{table.name}.{column.name} type"
        assert primary_keys[table.name] == [c.name for c in table.primary_key.columns]
