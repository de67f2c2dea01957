"""The OpenAPI document of the REST surface (openapi.yaml beside this file), as JSON and YAML."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

try:  # libyaml's safe loader: the pure-Python one took ~0.1 s of every start-up (measured)
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

DOCUMENT_PATH = Path(__file__).with_name("openapi.yaml")
YAML_MEDIA_TYPE = "application/yaml"


@dataclass(frozen=True, slots=True)
class _Served:
    """The document parsed once, in both wire forms."""

    document: dict[str, Any]
    json: bytes
    yaml: bytes


@functools.cache
def _served() -> _Served:
    text = DOCUMENT_PATH.read_text(encoding="utf-8")
    document = yaml.load(text, Loader=_SafeLoader)
    if not isinstance(document, dict):
        raise ValueError(f"{DOCUMENT_PATH}: not a YAML mapping")
    # Fails here (at startup) if YAML produced anything JSON cannot carry, such as a date.
    return _Served(document, orjson.dumps(document), text.encode())


def document() -> dict[str, Any]:
    """The parsed document (shared: do not modify)."""
    return _served().document


async def get_json(request: Request) -> Response:
    return Response(_served().json, media_type="application/json")


async def get_yaml(request: Request) -> Response:
    return Response(_served().yaml, media_type=YAML_MEDIA_TYPE)


def routes() -> list[Route]:
    """The two document routes; the document is read and parsed here, once per process."""
    _served()
    return [
        Route("/api/v1/openapi.json", get_json, methods=["GET"]),
        Route("/api/v1/openapi.yaml", get_yaml, methods=["GET"]),
    ]
