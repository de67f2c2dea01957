"""Settings: names from the environment, files for secrets, clear errors naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from datastorage.settings import Mode, SettingsError, load_settings


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATASTORAGE_DLQ_MAX_LEN", "250")
    monkeypatch.setenv("DATASTORAGE_PORT", "9090")
    monkeypatch.setenv("DATASTORAGE_DATABASE_URL", "postgresql://u@db:5432/audit")
    settings = load_settings()
    assert settings.dlq.max_len == 250
    assert settings.service.port == 9090
    assert settings.service.max_batch_size == 1000
    assert settings.database.url == "postgresql://u@db:5432/audit"
    assert settings.service.mode is Mode.DEVELOPMENT
    assert settings.graphiql_enabled and settings.introspection_enabled


def test_production_turns_graphiql_and_introspection_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATASTORAGE_MODE", "production")
    settings = load_settings()
    assert not settings.graphiql_enabled
    assert not settings.introspection_enabled


def test_secret_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text("postgresql://u:s3cret@db/audit\n")
    monkeypatch.setenv("DATASTORAGE_DATABASE_URL_FILE", str(secret))
    assert load_settings().database.url == "postgresql://u:s3cret@db/audit"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("DATASTORAGE_DLQ_MAX_LEN", "lots", "DATASTORAGE_DLQ_MAX_LEN"),
        ("DATASTORAGE_PORT", "70000", "DATASTORAGE_PORT"),
        ("DATASTORAGE_MODE", "staging", "DATASTORAGE_MODE"),
        ("DATASTORAGE_DATABASE_URL", "mysql://x", "DATASTORAGE_DATABASE_URL"),
        ("DATASTORAGE_REDIS_URL", "http://x", "DATASTORAGE_REDIS_URL"),
    ],
)
def test_a_bad_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_cli_stops_on_a_bad_setting_with_a_clear_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "datastorage.cli", "migrate"],
        env={"DATASTORAGE_DLQ_MAX_LEN": "-5", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "DATASTORAGE_DLQ_MAX_LEN" in result.stderr
    assert "Traceback" not in result.stderr
