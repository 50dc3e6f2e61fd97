"""Settings from the environment, and the one-line startup errors for bad ones."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pangea_mcp.cli import main
from pangea_mcp.config import DEFAULT_BASE_URL_TEMPLATE, SERVICE_MODULES, Settings


def _settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings()
    assert settings.url_template == DEFAULT_BASE_URL_TEMPLATE
    assert settings.services == SERVICE_MODULES
    assert settings.request_timeout == 30 and settings.request_retries == 3
    assert not settings.has_credentials


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANGEA_TOKEN", "pts_" + "x" * 32)
    monkeypatch.setenv("PANGEA_BASE_URL_TEMPLATE", "http://127.0.0.1:8900/{SERVICE_NAME}")
    monkeypatch.setenv("PANGEA_REQUEST_TIMEOUT", "12.5")
    monkeypatch.setenv("PANGEA_SERVICES", " domain_intel , ip_intel ")
    monkeypatch.setenv("PANGEA_LOG_LEVEL", "debug")
    monkeypatch.setenv("PANGEA_AUDIT_CONFIG_ID", "pci_" + "a" * 32)
    settings = _settings()
    assert settings.token is not None and settings.token.get_secret_value() == "pts_" + "x" * 32
    assert "x" * 32 not in repr(settings)  # SecretStr
    assert settings.service_url("vault", "v2/get") == "http://127.0.0.1:8900/vault/v2/get"
    assert settings.request_timeout == 12.5
    assert settings.services == ("ip_intel", "domain_intel")
    assert settings.log_level == "DEBUG"


def test_env_file_is_read(tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"  # type: ignore[operator]
    env.write_text("PANGEA_DOMAIN=aws.eu.pangea.cloud\n")
    settings = Settings(_env_file=env)  # type: ignore[call-arg]
    assert settings.url_template == "https://{SERVICE_NAME}.aws.eu.pangea.cloud"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PANGEA_VAULT_TOKEN": "pts_" + "v" * 32}, "PANGEA_VAULT_ITEM_ID"),
        ({"PANGEA_VAULT_ITEM_ID": "pvi_" + "a" * 32}, "PANGEA_VAULT_TOKEN"),
        ({"PANGEA_VAULT_ITEM_ID": "not-an-id", "PANGEA_VAULT_TOKEN": "x"}, "PANGEA_VAULT_ITEM_ID"),
        ({"PANGEA_REQUEST_TIMEOUT": "abc"}, "PANGEA_REQUEST_TIMEOUT"),
        ({"PANGEA_REQUEST_TIMEOUT": "0"}, "PANGEA_REQUEST_TIMEOUT"),
        ({"PANGEA_REQUEST_RETRIES": "-1"}, "PANGEA_REQUEST_RETRIES"),
        ({"PANGEA_BASE_URL_TEMPLATE": "ftp://x/{SERVICE_NAME}"}, "PANGEA_BASE_URL_TEMPLATE"),
        ({"PANGEA_BASE_URL_TEMPLATE": "https://{SERVICE}.x"}, "PANGEA_BASE_URL_TEMPLATE"),
        ({"PANGEA_DOMAIN": "not a domain"}, "PANGEA_DOMAIN"),
        ({"PANGEA_SERVICES": "ip_intel,nope"}, "PANGEA_SERVICES"),
        ({"PANGEA_LOG_LEVEL": "loud"}, "PANGEA_LOG_LEVEL"),
        ({"PANGEA_REDACT_CONFIG_ID": "pci_short"}, "PANGEA_REDACT_CONFIG_ID"),
        ({"PANGEA_TOKEN": "has a space"}, "PANGEA_TOKEN"),
    ],
)
def test_bad_setting_is_one_clear_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], variable: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        _settings()

    assert main(["--env-file", "/nonexistent/.env"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert variable in err
    assert "Traceback" not in err
    for value in env.values():
        if value.startswith("pts_"):
            assert value not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from pangea_mcp import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"pangea-mcp {__version__}"
