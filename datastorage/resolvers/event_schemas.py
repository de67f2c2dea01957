"""Optional JSON Schemas for `event_data`, one per event type, registered by configuration.

A directory holds `<event_type>.json` files (e.g. `gateway.signal.received.json`). Every file is
checked as a JSON Schema at start-up, so a broken schema stops the service instead of refusing
events later; event types without a file accept any object.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

# At most this many problems are reported per event: enough to fix it, bounded for the response.
MAX_REPORTED = 5


class EventSchemaError(Exception):
    """A schema file cannot be read or is not a valid JSON Schema; the message names the file."""


def load_event_schemas(directory: Path | None) -> Mapping[str, Draft202012Validator]:
    """Event type → compiled validator for every `*.json` file in `directory`."""
    if directory is None:
        return {}
    if not directory.is_dir():
        raise EventSchemaError(f"{directory} is not a directory")
    validators: dict[str, Draft202012Validator] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            schema = orjson.loads(path.read_bytes())
            Draft202012Validator.check_schema(schema)
        except (OSError, orjson.JSONDecodeError) as exc:
            raise EventSchemaError(f"{path}: cannot be read as JSON ({exc})") from None
        except SchemaError as exc:
            raise EventSchemaError(f"{path}: not a valid JSON Schema ({exc.message})") from None
        validators[path.name.removesuffix(".json")] = Draft202012Validator(schema)
    return validators


def schema_problems(validator: Draft202012Validator, event_data: Any) -> dict[str, str]:
    """`event_data.<path>` → what the registered schema requires there (empty when valid)."""
    problems: dict[str, str] = {}
    for error in sorted(validator.iter_errors(event_data), key=lambda e: list(e.absolute_path)):
        path = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
        )
        problems.setdefault(
            f"event_data{path}", f"does not match the schema of this event type: {error.message}"
        )
        if len(problems) >= MAX_REPORTED:
            break
    return problems
