"""`datastorage workflows import FILE… | export`: the workflow catalog to and from YAML/JSON files.

Import sends every workflow through the same use case as `POST /api/v1/workflows` (validation,
versioning, self-audit); a version already stored with the same content is "unchanged", so a
catalog can be imported again and again. Export writes what import reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from datastorage.lifecycle import command_services
from datastorage.persistence.errors import TransientDatabaseError
from datastorage.resolvers import workflows
from datastorage.resolvers.context import Context
from datastorage.resolvers.errors import DomainError, ServiceUnavailable, ValidationFailed
from datastorage.resolvers.workflow_files import (
    WorkflowFileError,
    dump_workflows,
    export_body,
    file_format,
    read_workflow_file,
)
from datastorage.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_UNAVAILABLE = (ServiceUnavailable, TransientDatabaseError)


class Progress:
    """A bar redrawn in place on a terminal; elsewhere, the plain lines the caller passes."""

    WIDTH = 30

    def __init__(self, stream: TextIO, label: str, total: int) -> None:
        self.stream = stream
        self.label = label
        self.total = total
        self.done = 0
        self.terminal = stream.isatty()

    def advance(self, count: int, line: str | None = None) -> None:
        self.done += count
        if self.terminal:
            self._draw()
        elif line is not None:
            print(line, file=self.stream, flush=True)

    def note(self, text: str, stream: TextIO) -> None:
        """A line of its own, above the bar on a terminal."""
        if self.terminal:
            self.stream.write("\r\033[K")
            self.stream.flush()
        print(text, file=stream, flush=True)
        if self.terminal and self.done:
            self._draw()

    def close(self) -> None:
        if self.terminal and self.done:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        filled = self.WIDTH * min(self.done, self.total) // self.total if self.total else 0
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total}")
        self.stream.flush()


@dataclass(slots=True)
class _Tally:
    created: int = 0
    unchanged: int = 0
    failed: int = 0
    unreadable_files: int = 0

    def summary(self) -> str:
        files = f"; {self.unreadable_files} file(s) not read" if self.unreadable_files else ""
        return f"created {self.created}, unchanged {self.unchanged}, failed {self.failed}{files}"


def run_import(settings: Settings, names: list[str]) -> int:
    """Import every workflow of the files; 0 when all are created or unchanged, else 1."""
    paths = [Path(name) for name in names]
    unknown = [path for path in paths if file_format(path) is None]
    for path in unknown:
        print(f"datastorage: {path}: expected a .yaml, .yml or .json file", file=sys.stderr)
    if unknown:
        return EXIT_USAGE
    tally = _Tally()
    loaded: list[tuple[Path, list[Any]]] = []
    for path in paths:
        try:
            loaded.append((path, read_workflow_file(path)))
        except WorkflowFileError as exc:
            tally.unreadable_files += 1
            print(f"{path}: error: {exc}", file=sys.stderr, flush=True)
    total = sum(len(bodies) for _, bodies in loaded)
    if total:
        try:
            asyncio.run(_import(settings, loaded, tally, total))
        except _UNAVAILABLE as exc:
            attempted = tally.created + tally.unchanged + tally.failed
            tally.failed += total - attempted
            print(f"datastorage: stopped, PostgreSQL is unavailable ({exc})", file=sys.stderr)
    print(tally.summary(), flush=True)
    return EXIT_FAILED if tally.failed or tally.unreadable_files else EXIT_OK


async def _import(
    settings: Settings, loaded: list[tuple[Path, list[Any]]], tally: _Tally, total: int
) -> None:
    progress = Progress(sys.stdout, "importing", total)
    try:
        async with command_services(settings) as services:
            ctx = Context(services=services)
            for path, bodies in loaded:
                for index, body in enumerate(bodies, 1):
                    await _import_one(ctx, (path, index, body), tally, progress)
    finally:
        progress.close()


async def _import_one(
    ctx: Context, item: tuple[Path, int, Any], tally: _Tally, progress: Progress
) -> None:
    path, index, body = item
    where = _where(path, index, body)
    try:
        created = await workflows.import_workflow(ctx, body)
    except ServiceUnavailable:
        raise  # every later workflow would fail the same way: stop
    except DomainError as exc:
        tally.failed += 1
        for problem in _problems(exc, yaml_file=file_format(path) == "yaml"):
            progress.note(f"{where}: error: {problem}", sys.stderr)
        progress.advance(1)
        return
    if created is None:
        tally.unchanged += 1
        progress.advance(1, f"{where}: unchanged")
    else:
        tally.created += 1
        progress.advance(1, f"{where}: created")


def _where(path: Path, index: int, body: Any) -> str:
    """`FILE #N workflow_name version`: the position counts from 1 across the file's documents."""
    names = []
    if isinstance(body, dict):
        names = [str(body[key])[:80] for key in ("workflow_name", "version") if body.get(key)]
    return " ".join([f"{path} #{index}", *names])


def _problems(exc: DomainError, *, yaml_file: bool) -> list[str]:
    if not isinstance(exc, ValidationFailed):
        return [exc.detail]
    problems = []
    for field, rule in exc.field_errors.items():
        if yaml_file and rule.startswith(
            ("must be a string, got number", "must be a string, got boolean")
        ):
            rule += " (quote the value in YAML)"
        problems.append(f"{field}: {rule}")
    return problems


def run_export(settings: Settings, kind: str | None, all_versions: bool, output: str | None) -> int:
    """Write the catalog (latest versions, or all) as one file that `import` reads back."""
    target = Path(output) if output else None
    if target is not None:
        by_extension = file_format(target)
        if by_extension is None or (kind is not None and kind != by_extension):
            print(
                f"datastorage: --output {target}: the extension must be .yaml or .yml for YAML, "
                ".json for JSON (import reads files by their extension)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        kind = by_extension
    # Progress and the summary go where the data does not.
    status = sys.stderr if target is None else sys.stdout
    try:
        bodies = asyncio.run(_read_catalog(settings, all_versions, status))
    except _UNAVAILABLE as exc:
        print(f"datastorage: PostgreSQL is unavailable ({exc})", file=sys.stderr)
        return EXIT_FAILED
    data = dump_workflows(bodies, kind or "yaml")
    if target is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        try:
            _write_replacing(target, data)
        except OSError as exc:
            print(f"datastorage: {target}: cannot be written: {exc.strerror}", file=sys.stderr)
            return EXIT_FAILED
    which = "all versions" if all_versions else "latest versions"
    print(
        f"exported {len(bodies)} workflow(s) ({which}) to {target or 'standard output'}",
        file=status,
    )
    return EXIT_OK


async def _read_catalog(
    settings: Settings, all_versions: bool, status: TextIO
) -> list[dict[str, Any]]:
    async with command_services(settings) as services:
        ctx = Context(services=services)
        total = await workflows.count_exported(ctx, all_versions=all_versions)
        progress = Progress(status, "exporting", total)
        bodies: list[dict[str, Any]] = []
        try:
            async for page in workflows.export_workflows(ctx, all_versions=all_versions):
                bodies.extend(export_body(record) for record in page)
                progress.advance(len(page), f"read {len(bodies)}/{total} workflows")
        finally:
            progress.close()
    return bodies


def _write_replacing(target: Path, data: bytes) -> None:
    """Write all of it or nothing: an interrupted export never leaves half a catalog."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
