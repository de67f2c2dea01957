"""Which PostgreSQL failures are worth queueing (transient) and which are the data's (permanent)."""

from __future__ import annotations

import asyncpg
import pytest

from datastorage.persistence.database import classify
from datastorage.persistence.errors import (
    MissingPartition,
    PermanentDataError,
    TransientDatabaseError,
)


def _error(sqlstate: str, message: str = "boom") -> asyncpg.PostgresError:
    for cls in asyncpg.PostgresError.__subclasses__() + [
        sub for base in asyncpg.PostgresError.__subclasses__() for sub in base.__subclasses__()
    ]:
        if getattr(cls, "sqlstate", None) == sqlstate:
            error: asyncpg.PostgresError = cls(message)
            break
    else:
        error = asyncpg.PostgresError(message)
        error.sqlstate = sqlstate  # type: ignore[attr-defined]
    # As the driver fills it from the server's answer.
    error.message = message  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    "sqlstate",
    ["08006", "08001", "40001", "40P01", "53100", "53200", "53300", "57P01", "57P03", "25006"],
)
def test_transient_states_are_queued(sqlstate: str) -> None:
    assert isinstance(classify(_error(sqlstate)), TransientDatabaseError)


@pytest.mark.parametrize("sqlstate", ["22001", "22P02", "23505", "23514", "42703"])
def test_the_datas_own_faults_are_permanent(sqlstate: str) -> None:
    result = classify(_error(sqlstate, "secret value 'x' in the message"))
    assert isinstance(result, PermanentDataError)
    assert "secret" not in str(result)


def test_a_missing_partition_is_its_own_kind() -> None:
    error = _error("23514", 'no partition of relation "audit_events" found for row')
    assert isinstance(classify(error), MissingPartition)


def test_lost_connections_are_transient() -> None:
    assert isinstance(classify(ConnectionResetError()), TransientDatabaseError)
    assert isinstance(classify(asyncpg.InterfaceError("closed")), TransientDatabaseError)
    assert classify(RuntimeError("a bug")) is None
