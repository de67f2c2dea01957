"""An operation allow-list: when configured, only registered documents (by SHA-256) run.

The file is JSON: a list of documents, or an object mapping each document's SHA-256 (hex of the
UTF-8 text) to the document. The check is a validation rule, so it covers POST, GET and
websockets alike, and the compiled path refuses to plan a document that is not listed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
from graphql import GraphQLError, ValidationRule
from graphql.language import DocumentNode


class AllowListError(Exception):
    """The allow-list file cannot be used; the message says why."""


def document_hash(text: str) -> str:
    """The SHA-256 (hex) a document is registered under."""
    return hashlib.sha256(text.encode()).hexdigest()


def load_allowlist(path: Path) -> frozenset[str]:
    """The hashes of the documents listed in `path`."""
    try:
        content = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise AllowListError(f"{path}: cannot be read as JSON ({exc})") from None
    if isinstance(content, list) and all(isinstance(item, str) for item in content):
        return frozenset(document_hash(item) for item in content)
    if isinstance(content, dict) and all(isinstance(item, str) for item in content.values()):
        for declared, document in content.items():
            if document_hash(document) != declared:
                raise AllowListError(f"{path}: {declared[:16]}… is not the SHA-256 of its document")
        return frozenset(content)
    raise AllowListError(
        f"{path}: must be a JSON list of documents or an object of sha256 → document"
    )


def allowlist_rule(allowed: frozenset[str]) -> type[ValidationRule]:
    """A validation rule refusing every document whose hash is not in `allowed`."""

    class OperationAllowList(ValidationRule):
        def enter_document(self, node: DocumentNode, *_args: Any) -> None:
            source = node.loc.source.body if node.loc is not None else None
            if source is None or document_hash(source) not in allowed:
                self.report_error(
                    GraphQLError("This operation is not in the allow-list of persisted queries.")
                )

    return OperationAllowList
