"""Structured log lines carry the request context."""

from __future__ import annotations

import logging
import sys

import orjson

from datastorage.observability.logging import (
    JsonFormatter,
    logging_config,
    request_id_var,
    trace_id_var,
)


def test_json_line_has_context_extras_and_exception() -> None:
    request_token = request_id_var.set("req-1")
    trace_token = trace_id_var.set("4bf92f3577b34da6a3ce929d0e0e4736")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            record = logging.getLogger("datastorage.test").makeRecord(
                "datastorage.test",
                logging.ERROR,
                __file__,
                1,
                "flush of %d events failed",
                (3,),
                None,
            )
            record.exc_info = sys.exc_info()
        record.__dict__["batch_size"] = 3
        line = JsonFormatter().format(record)
    finally:
        request_id_var.reset(request_token)
        trace_id_var.reset(trace_token)
    entry = orjson.loads(line)
    assert entry["message"] == "flush of 3 events failed"
    assert entry["level"] == "error"
    assert entry["request_id"] == "req-1"
    assert entry["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert entry["batch_size"] == 3
    assert "ValueError: boom" in entry["exception"]
    assert "\n" not in line


def test_production_logs_are_json() -> None:
    config = logging_config("auto", "info", production=True)
    assert config["handlers"]["default"]["formatter"] == "json"
    assert (
        logging_config("console", "debug", production=True)["handlers"]["default"]["formatter"]
        == "console"
    )
