"""The REST surface's own OpenAPI document: served alike as JSON and YAML, valid OpenAPI 3.1,
describing every route with its methods, every status the app answers, and the bodies it sends."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jsonschema
import orjson
import pytest
import yaml
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.applications import Starlette
from starlette.routing import Route

from datastorage.app import create_app
from datastorage.resolvers import audit_queries, validation
from datastorage.resolvers.health import VERSION
from datastorage.rest_compat import audit as rest_audit
from datastorage.rest_compat import openapi
from datastorage.rest_compat.problems import PROBLEMS
from datastorage.settings import DEFAULT_EVENT_CATEGORIES, ServiceSettings, Settings
from tests.conftest import event_body, now_utc, running

SINGLE = "/api/v1/audit/events"
BATCH = "/api/v1/audit/events/batch"
DOC_URI = "urn:datastorage:rest-openapi"
# Described by its own GraphQL schema, not by this document.
NOT_REST = frozenset({"/graphql"})
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
# The defaults the session's app runs with (conftest overrides neither).
MAX_BATCH_SIZE: int = ServiceSettings.model_fields["max_batch_size"].default
MAX_BODY_BYTES: int = ServiceSettings.model_fields["max_body_bytes"].default


# --- reading the document -------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def spec(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    """The document as the app serves it."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://datastorage.test") as http:
        response = await http.get("/api/v1/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    yield document


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _at(spec: dict[str, Any], pointer: str) -> Any:
    node: Any = spec
    for token in pointer.split("/")[1:]:
        node = node[_unescape(token)]
    return node


def _follow(spec: dict[str, Any], pointer: str) -> tuple[str, dict[str, Any]]:
    """(pointer, object) after following local `$ref`s from `pointer`."""
    node = _at(spec, pointer)
    while "$ref" in node:
        reference: str = node["$ref"]
        assert reference.startswith("#/"), reference
        pointer = reference[1:]
        node = _at(spec, pointer)
    return pointer, node


def _operation_pointer(spec: dict[str, Any], path: str, method: str) -> str | None:
    """Where the operation for `method path` is (HEAD is answered by the GET), or None."""
    method = "get" if method.lower() == "head" else method.lower()
    if method in spec["paths"].get(path, {}):
        return f"/paths/{_escape(path)}/{method}"
    return None


def _declared_response(
    spec: dict[str, Any], path: str, method: str, status: int
) -> tuple[str, dict[str, Any]] | None:
    """The response object the document gives for this answer: the operation's, else global."""
    operation = _operation_pointer(spec, path, method)
    if operation is not None and str(status) in _at(spec, operation)["responses"]:
        return _follow(spec, f"{operation}/responses/{status}")
    if str(status) in spec["x-global-responses"]:
        return _follow(spec, f"/x-global-responses/{status}")
    return None


def _declared_statuses(spec: dict[str, Any], path: str, method: str) -> set[int]:
    operation = _operation_pointer(spec, path, method)
    own = set(_at(spec, operation)["responses"]) if operation else set()
    return {int(status) for status in own | set(spec["x-global-responses"])}


def _schema_validator(spec: dict[str, Any], pointer: str) -> jsonschema.Draft202012Validator:
    """A validator for the schema at `pointer`, resolving its `$ref`s within the document."""
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    return jsonschema.Draft202012Validator(
        {"$ref": f"{DOC_URI}#{pointer}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def check_answer(spec: dict[str, Any], method: str, path: str, response: httpx.Response) -> None:
    """The answer's status, media type, required headers and JSON body are all documented."""
    seen = f"{method} {path} -> {response.status_code} {response.text[:300]}"
    found = _declared_response(spec, path, method, response.status_code)
    assert found is not None, f"undocumented status: {seen}"
    pointer, declared = found
    for name in declared.get("headers", {}):
        header_pointer, header = _follow(spec, f"{pointer}/headers/{_escape(name)}")
        if header.get("required"):
            assert name in response.headers, f"missing header {name}: {seen}"
            value: Any = response.headers[name]
            if _follow(spec, f"{header_pointer}/schema")[1].get("type") == "integer":
                value = int(value)
            _schema_validator(spec, f"{header_pointer}/schema").validate(value)
    if method.upper() == "HEAD":
        return
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
    content = declared.get("content", {})
    assert media_type in content, f"undocumented media type {media_type!r}: {seen}"
    if media_type.endswith("json"):
        schema = f"{pointer}/content/{_escape(media_type)}/schema"
        errors = list(_schema_validator(spec, schema).iter_errors(response.json()))
        assert not errors, f"{seen}\n" + "\n".join(
            f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]
        )


# --- the two forms, and validity ------------------------------------------------------------------


async def test_json_and_yaml_routes_serve_the_same_document(client: httpx.AsyncClient) -> None:
    as_json = await client.get("/api/v1/openapi.json")
    as_yaml = await client.get("/api/v1/openapi.yaml")
    assert (as_json.status_code, as_yaml.status_code) == (200, 200)
    assert as_json.headers["content-type"] == "application/json"
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    from_yaml = yaml.safe_load(as_yaml.text)
    assert from_yaml == as_json.json()
    # The YAML is the file itself, and it holds nothing JSON cannot carry (dates, int keys...).
    assert as_yaml.text == openapi.DOCUMENT_PATH.read_text(encoding="utf-8")
    assert orjson.loads(orjson.dumps(from_yaml)) == from_yaml


def test_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    validate(spec, cls=OpenAPIV31SpecValidator)
    assert spec["info"]["version"] == VERSION
    # Every Schema Object it uses is itself valid JSON Schema 2020-12.
    for name in spec["components"]["schemas"]:
        jsonschema.Draft202012Validator.check_schema(spec["components"]["schemas"][name])
    operation_ids = [
        operation["operationId"]
        for item in spec["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    assert len(operation_ids) == len(set(operation_ids))


# --- every route, the problem table, the limits ---------------------------------------------------


def test_every_route_is_described_with_its_methods(app: Starlette, spec: dict[str, Any]) -> None:
    served: dict[str, set[str]] = {}
    for route in app.routes:
        path = getattr(route, "path", None)
        if path in NOT_REST:
            continue
        assert isinstance(route, Route) and route.methods, f"undescribable route {route!r}"
        # Starlette adds HEAD to every GET route; the GET operation describes both.
        served.setdefault(route.path, set()).update(
            method.lower() for method in route.methods if method != "HEAD"
        )
    documented = {
        path: {method for method in item if method in HTTP_METHODS}
        for path, item in spec["paths"].items()
    }
    assert documented == served


def test_problem_types_are_the_problem_table(spec: dict[str, Any]) -> None:
    problem = spec["components"]["schemas"]["Problem"]
    listed = {item["slug"]: (item["status"], item["title"]) for item in problem["x-problem-types"]}
    assert listed == PROBLEMS
    for slug, (status, _) in PROBLEMS.items():
        assert f"| `{slug}` | {status} |" in problem["description"]


def test_documented_limits_are_the_coded_ones(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    request = schemas["AuditEventRequest"]["properties"]
    assert request["event_type"]["pattern"] == validation.EVENT_TYPE_PATTERN.pattern
    assert request["event_outcome"]["enum"] == list(validation.OUTCOMES)
    assert schemas["AuditEvent"]["properties"]["event_outcome"]["enum"] == list(validation.OUTCOMES)
    assert request["error_message"]["maxLength"] == validation.ERROR_MESSAGE_MAX_BYTES
    assert request["retention_days"]["default"] == validation.RETENTION_DAYS_DEFAULT
    assert request["duration_ms"]["maximum"] == validation.INT64_MAX
    data = request["event_data"]["description"]
    assert f"{validation.EVENT_DATA_MAX_BYTES} bytes" in data
    assert f"at most {validation.EVENT_DATA_MAX_DEPTH} levels" in data
    for category in DEFAULT_EVENT_CATEGORIES:
        assert category in request["event_category"]["description"]
    batch = spec["paths"][BATCH]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["maxItems"] == MAX_BATCH_SIZE

    parameters = {p["name"]: p["schema"] for p in spec["paths"][SINGLE]["get"]["parameters"]}
    assert set(parameters) == {*rest_audit._FILTER_PARAMS, "limit", "offset", "cursor"}
    for name, max_len in audit_queries._STRING_FILTERS.items():
        assert parameters[name]["maxLength"] == max_len, name
    assert parameters["event_outcome"]["enum"] == list(validation.OUTCOMES)
    assert parameters["detail_key"]["pattern"] == audit_queries.DETAIL_KEY_PATTERN.pattern
    assert parameters["limit"]["maximum"] == rest_audit.QUERY_LIMIT_MAX
    assert parameters["limit"]["default"] == rest_audit.QUERY_LIMIT_DEFAULT
    assert parameters["offset"]["maximum"] == rest_audit.QUERY_OFFSET_MAX


async def test_request_length_limits_are_the_enforced_ones(
    client: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    properties = spec["components"]["schemas"]["AuditEventRequest"]["properties"]
    limited = {name: p["maxLength"] for name, p in properties.items() if "maxLength" in p}
    # Every free-text field has a length limit (formats, enums and addresses have their own rule).
    free_text = {
        name
        for name, p in properties.items()
        if "string" in p.get("type", ()) and "format" not in p and "enum" not in p
    } - {"actor_ip"}
    assert set(limited) == free_text
    for name, max_len in limited.items():
        body = event_body(**{name: "x" * (max_len + 1)})
        response = await client.post(SINGLE, json=body)
        check_answer(spec, "POST", SINGLE, response)
        assert response.status_code == 400, (name, response.text)
        message = response.json()["field_errors"][name]
        assert f"at most {max_len} " in message, (name, message)
    # Everything at its limit at once is accepted (categories are a list, not a length).
    at_limit = {name: "x" * max_len for name, max_len in limited.items()}
    at_limit["event_type"] = "a" * 49 + "." + "b" * (limited["event_type"] - 50)
    at_limit["event_category"] = "gateway"
    at_limit["cluster_id"] = at_limit["cluster_name"]
    response = await client.post(SINGLE, json=event_body(**at_limit))
    check_answer(spec, "POST", SINGLE, response)
    assert response.status_code == 201, response.text


# --- every answer the app gives is declared, with the documented body -----------------------------


def _json(body: Any) -> dict[str, Any]:
    return {"json": body}


def _raw(content: bytes, content_type: str | None = "application/json") -> dict[str, Any]:
    headers = {"content-type": content_type} if content_type else {}
    return {"content": content, "headers": headers}


def _too_large() -> dict[str, Any]:
    return _raw(b"[" + b" " * MAX_BODY_BYTES + b"]")


_REPEATED_ID = str(uuid.uuid4())

# (method, path, request factory, status, problem slug or None)
CASES: list[Any] = [
    pytest.param("POST", SINGLE, lambda: _json(event_body()), 201, None, id="single-created"),
    pytest.param(
        "POST",
        SINGLE,
        lambda: _json(event_body(event_id=_REPEATED_ID, cluster_id="eu-1")),
        201,
        None,
        id="single-with-event-id",
    ),
    pytest.param(
        "POST", SINGLE, lambda: _raw(b"{nope"), 400, "invalid-request", id="single-bad-json"
    ),
    pytest.param(
        "POST", SINGLE, lambda: _json([event_body()]), 400, "invalid-request", id="single-array"
    ),
    pytest.param(
        "POST",
        SINGLE,
        lambda: _json(event_body(event_outcome="maybe", event_type="Bad", event_data=None)),
        400,
        "validation-error",
        id="single-invalid-fields",
    ),
    pytest.param(
        "POST",
        SINGLE,
        lambda: _json(event_body(parent_event_id=str(uuid.uuid4()))),
        400,
        "validation-error",
        id="single-unknown-parent",
    ),
    pytest.param(
        "POST",
        SINGLE,
        lambda: _json(event_body(event_timestamp=(now_utc() + dt.timedelta(days=1)).isoformat())),
        400,
        "validation-error",
        id="single-future",
    ),
    pytest.param("POST", SINGLE, _too_large, 413, "request-too-large", id="single-too-large"),
    pytest.param(
        "POST",
        SINGLE,
        lambda: _raw(orjson.dumps(event_body()), "text/plain"),
        415,
        "unsupported-media-type",
        id="single-text-plain",
    ),
    pytest.param(
        "POST",
        SINGLE,
        lambda: _raw(orjson.dumps(event_body()), None),
        415,
        "unsupported-media-type",
        id="single-no-content-type",
    ),
    pytest.param(
        "POST", BATCH, lambda: _json([event_body(), event_body()]), 201, None, id="batch-created"
    ),
    pytest.param("POST", BATCH, lambda: _raw(b"[1,"), 400, "invalid-request", id="batch-bad-json"),
    pytest.param(
        "POST", BATCH, lambda: _json(event_body()), 400, "invalid-request", id="batch-object"
    ),
    pytest.param("POST", BATCH, lambda: _json([]), 400, "invalid-request", id="batch-empty"),
    pytest.param(
        "POST",
        BATCH,
        lambda: _json([event_body()] * (MAX_BATCH_SIZE + 1)),
        400,
        "batch-size-exceeded",
        id="batch-too-many",
    ),
    pytest.param(
        "POST",
        BATCH,
        lambda: _json([event_body(), 7, event_body(severity=3)]),
        400,
        "validation-error",
        id="batch-invalid-items",
    ),
    pytest.param(
        "POST",
        BATCH,
        lambda: _json([event_body(event_id=_REPEATED_ID)] * 2),
        400,
        "validation-error",
        id="batch-repeated-id",
    ),
    pytest.param("POST", BATCH, _too_large, 413, "request-too-large", id="batch-too-large"),
    pytest.param(
        "POST",
        BATCH,
        lambda: _raw(b"[]", "application/x-www-form-urlencoded"),
        415,
        "unsupported-media-type",
        id="batch-form",
    ),
    pytest.param("GET", SINGLE, lambda: {}, 200, None, id="query-all"),
    pytest.param(
        "GET",
        SINGLE,
        lambda: {
            "params": {
                "event_category": "gateway",
                "event_outcome": "success",
                "since": "7d",
                "until": now_utc().date().isoformat(),
                "detail_key": "signal",
                "detail_value": "KubePodCrashLooping",
                "limit": "5",
                "offset": "1",
            }
        },
        200,
        None,
        id="query-filters",
    ),
    *(
        pytest.param(
            "GET", SINGLE, lambda p=params: {"params": p}, 400, "validation-error", id=name
        )
        for name, params in {
            "query-limit-zero": {"limit": "0"},
            "query-limit-over": {"limit": "1001"},
            "query-limit-text": {"limit": "ten"},
            "query-offset-negative": {"offset": "-1"},
            "query-bad-outcome": {"event_outcome": "maybe"},
            "query-bad-since": {"since": "yesterday"},
            "query-since-after-until": {"since": "2026-02-02", "until": "2026-02-01"},
            "query-lone-detail-key": {"detail_key": "pod"},
            "query-bad-detail-key": {"detail_key": "a-b", "detail_value": "x"},
            "query-long-namespace": {"namespace": "n" * 254},
            "query-bad-cursor": {"cursor": "not-a-cursor"},
        }.items()
    ),
    pytest.param("GET", "/health", lambda: {}, 200, None, id="health"),
    pytest.param("GET", "/health/ready", lambda: {}, 200, None, id="ready"),
    pytest.param("GET", "/readyz", lambda: {}, 200, None, id="readyz"),
    pytest.param("GET", "/health/live", lambda: {}, 200, None, id="live"),
    pytest.param("GET", "/healthz", lambda: {}, 200, None, id="healthz"),
    pytest.param("HEAD", "/healthz", lambda: {}, 200, None, id="healthz-head"),
    pytest.param("GET", "/metrics", lambda: {}, 200, None, id="metrics"),
    pytest.param("GET", "/api/v1/openapi.json", lambda: {}, 200, None, id="openapi-json"),
    pytest.param("GET", "/api/v1/openapi.yaml", lambda: {}, 200, None, id="openapi-yaml"),
    pytest.param("GET", "/api/v1/audit/nothing", lambda: {}, 404, "not-found", id="no-route"),
    pytest.param("DELETE", SINGLE, lambda: {}, 405, "method-not-allowed", id="wrong-method"),
    pytest.param("POST", "/health", lambda: _json({}), 405, "method-not-allowed", id="post-probe"),
]


@pytest.mark.parametrize(("method", "path", "request_args", "status", "slug"), CASES)
async def test_answer_is_declared_with_its_body(
    client: httpx.AsyncClient,
    spec: dict[str, Any],
    method: str,
    path: str,
    request_args: Callable[[], dict[str, Any]],
    status: int,
    slug: str | None,
) -> None:
    response = await client.request(method, path, **request_args())
    assert response.status_code == status, response.text[:500]
    check_answer(spec, method, path, response)
    if slug is not None:
        assert response.json()["type"].rsplit("/", 1)[-1] == slug


async def test_stored_events_and_cursor_pages_match_the_event_schema(
    client: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    correlation = f"rr-openapi-{uuid.uuid4().hex[:8]}"
    first = await client.post(SINGLE, json=event_body(correlation_id=correlation))
    rich = event_body(
        event_id=str(uuid.uuid4()),
        correlation_id=correlation,
        parent_event_id=first.json()["event_id"],
        actor_ip="2001:db8::7",
        cluster_name="eu-west",
        namespace="payments",
        severity="critical",
        duration_ms=1234,
        error_code="E42",
        error_message="pod restarted",
        is_sensitive=True,
        retention_days=30,
        resource_name="api-7d9",
    )
    batch = await client.post(BATCH, json=[rich, event_body(correlation_id=correlation)])
    repeat = await client.post(BATCH, json=[rich])  # idempotent: answered, not stored again
    for response in (first, batch, repeat):
        check_answer(spec, "POST", response.request.url.path, response)
        assert response.status_code == 201, response.text
    assert repeat.json()["event_ids"] == [rich["event_id"]]

    page = await client.get(SINGLE, params={"correlation_id": correlation, "limit": "2"})
    check_answer(spec, "GET", SINGLE, page)
    body = page.json()
    assert len(body["data"]) == 2 and body["pagination"]["has_more"] is True
    assert body["next_cursor"] is not None
    last = await client.get(
        SINGLE, params={"correlation_id": correlation, "limit": "2", "cursor": body["next_cursor"]}
    )
    check_answer(spec, "GET", SINGLE, last)
    assert len(last.json()["data"]) == 1 and last.json()["next_cursor"] is None
    # Every field an event carries is described (the schema lists them as required).
    event_schema = spec["components"]["schemas"]["AuditEvent"]
    for event in body["data"]:
        assert set(event) == set(event_schema["properties"]) == set(event_schema["required"])


async def test_unavailable_writes_and_unready_probes_are_declared(
    make_settings: Callable[..., Settings], spec: dict[str, Any]
) -> None:
    app = create_app(make_settings())
    async with running(app) as client:
        services = app.state.services
        services.shutting_down = True
        for path in ("/health", "/health/ready", "/readyz"):
            response = await client.get(path)
            assert response.status_code == 503, (path, response.text)
            check_answer(spec, "GET", path, response)
        await services.writer.close()
        for path, body in ((SINGLE, event_body()), (BATCH, [event_body()])):
            response = await client.post(path, json=body)
            assert response.status_code == 503, (path, response.text)
            assert int(response.headers["retry-after"]) >= 1
            check_answer(spec, "POST", path, response)
        _assert_every_answer_declared(app, spec)


async def test_queued_writes_answer_202_as_declared(
    make_settings: Callable[..., Settings], spec: dict[str, Any]
) -> None:
    # The DLQ is not wired yet: stand in for it with a fallback that always takes the events.
    app = create_app(make_settings())
    async with running(app) as client:
        services = app.state.services
        queued: list[int] = []

        async def fallback(events: Any, reason: str) -> bool:
            queued.append(len(events))
            return True

        services.writer.set_fallback(fallback)
        await services.database.pool.close()
        for path, body in ((SINGLE, event_body()), (BATCH, [event_body(), event_body()])):
            response = await client.post(path, json=body)
            assert response.status_code == 202, (path, response.text)
            check_answer(spec, "POST", path, response)
        assert queued == [1, 2]
        _assert_every_answer_declared(app, spec)


async def test_unexpected_failures_answer_500_as_declared(
    app: Starlette, spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret driver text")

    for name in ("create_event", "create_events", "list_events"):
        monkeypatch.setattr(rest_audit.audit, name, broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://datastorage.test") as http:
        for method, path, args in (
            ("POST", SINGLE, _json(event_body())),
            ("POST", BATCH, _json([event_body()])),
            ("GET", SINGLE, {}),
        ):
            response = await http.request(method, path, **args)
            assert response.status_code == 500, response.text
            assert "secret" not in response.text
            check_answer(spec, method, path, response)


# --- last: everything the session's app has answered so far ---------------------------------------


def _assert_every_answer_declared(app: Starlette, spec: dict[str, Any]) -> None:
    """Every (route, method, status) in the app's request metrics is declared by the document.

    This covers every request any earlier test sent to this app, not just the ones above.
    """
    counter = app.state.services.metrics.http_requests
    undeclared = []
    for family in counter.collect():
        for sample in family.samples:
            if not sample.name.endswith("_total") or sample.value <= 0:
                continue
            route, method, status = (sample.labels[k] for k in ("route", "method", "status"))
            if route in NOT_REST:
                continue
            if route == "unmatched":
                allowed = {int(s) for s in spec["x-global-responses"]}
            else:
                allowed = _declared_statuses(spec, route, method)
            if int(status) not in allowed:
                undeclared.append((route, method, status))
    assert not undeclared, f"answers the document does not declare: {undeclared}"


def test_every_answer_of_the_session_app_is_declared(app: Starlette, spec: dict[str, Any]) -> None:
    _assert_every_answer_declared(app, spec)
