"""Credentials arrive as mounted files (SECRETS_DIR), never only as environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.backup import main as backup_main
from app.settings import load_settings


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    for name in ("DATABASE_URL", "API_KEYS", "OPENAI_API_KEY", "SMTP_PASSWORD", "BACKUP_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRETS_DIR", str(directory))
    return directory


def put(directory: Path, name: str, value: str) -> None:
    path = directory / name
    path.write_text(value)
    path.chmod(0o400)  # as the pod mounts them


def test_settings_read_the_mounted_files(secrets: Path, tmp_path: Path):
    put(secrets, "database_url", "postgresql://u:p@pooler:5432/content_engine")
    put(secrets, "api_keys", "k1,k2")
    put(secrets, "openai_api_key", "sk-test")
    put(secrets, "smtp_password", "mail-secret")
    settings = load_settings(data_dir=str(tmp_path))
    assert settings.database_url == "postgresql://u:p@pooler:5432/content_engine"
    assert settings.api_keys == "k1,k2"
    assert settings.openai_api_key == "sk-test" and settings.resolved_provider == "openai"
    assert settings.smtp_password == "mail-secret"


def test_an_environment_variable_wins_over_a_file(secrets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    put(secrets, "api_keys", "from-file")
    monkeypatch.setenv("API_KEYS", "from-env")
    assert load_settings(data_dir=str(tmp_path)).api_keys == "from-env"


def test_without_a_secrets_directory_nothing_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path / "absent"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert load_settings(data_dir=str(tmp_path)).openai_api_key is None


def test_backup_job_reads_its_settings_from_files(secrets: Path, capsys: pytest.CaptureFixture[str]):
    # No BACKUP_BUCKET in the environment: without the file the job refuses to start (exit 2).
    assert backup_main(["list"]) == 2
    assert "BACKUP_BUCKET" in capsys.readouterr().out
    put(secrets, "backup_bucket", "x")  # too short: the file's value reached validation
    assert backup_main(["list"]) == 2
    assert "at least 3 characters" in capsys.readouterr().out
