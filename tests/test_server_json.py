"""server.json (MCP registry entry): version from the one place, and the credentials Settings reads."""

from __future__ import annotations

import json
import os
import re
import tomllib
import typing
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from pangea_mcp import __version__
from pangea_mcp.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
DUMMY_TOKEN = "pts_" + "a" * 32
#: Settings for the HTTP transport (PANGEA_MCP_*): the registry entry is the stdio package, where they
#: do nothing, so they are not offered to users installing it from the registry.
HTTP_ONLY_PREFIX = "mcp_"

# Field names allowed by the 2025-12-11 server.json schema (the subset this file may use).
SERVER_KEYS = {"$schema", "name", "title", "description", "version", "repository", "websiteUrl", "packages"}
PACKAGE_KEYS = {
    "registryType",
    "registryBaseUrl",
    "identifier",
    "version",
    "runtimeHint",
    "transport",
    "environmentVariables",
    "packageArguments",
    "runtimeArguments",
}
INPUT_KEYS = {"name", "description", "isRequired", "isSecret", "format", "default", "placeholder", "choices"}


@pytest.fixture
def server() -> dict[str, typing.Any]:
    data = json.loads((ROOT / "server.json").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture
def package(server: dict[str, typing.Any]) -> dict[str, typing.Any]:
    (pypi,) = [p for p in server["packages"] if p["registryType"] == "pypi"]
    assert isinstance(pypi, dict)
    return pypi


def _is_secret(annotation: object) -> bool:
    """SecretStr, also inside Optional[...] and Annotated[...]."""
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in typing.get_args(annotation))


def secret_fields() -> set[str]:
    return {
        name
        for name, info in Settings.model_fields.items()
        if _is_secret(info.annotation) and not name.startswith(HTTP_ONLY_PREFIX)
    }


def companion_fields(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Settings a credential cannot work without: what Settings demands once a secret alone is set."""
    for name in list(os.environ):
        if name.upper().startswith("PANGEA_"):
            monkeypatch.delenv(name)
    required = set()
    for name in secret_fields():
        try:
            Settings(**{name: DUMMY_TOKEN}, _env_file=None)  # type: ignore[arg-type]
        except ValidationError as exc:
            required |= {m.lower() for m in re.findall(r"PANGEA_([A-Z_]+) is required", str(exc))}
    return required


def test_version_is_the_package_version(
    server: dict[str, typing.Any], package: dict[str, typing.Any]
) -> None:
    assert server["version"] == __version__
    assert package["version"] == __version__


def test_package_is_this_project_on_pypi_over_stdio(package: dict[str, typing.Any]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert package["identifier"] == project["name"]
    assert package["registryBaseUrl"] == "https://pypi.org"
    assert package["transport"] == {"type": "stdio"}
    assert package["runtimeHint"] == "uvx"
    assert "pangea-mcp" in project["scripts"], "uvx runs the console script named like the package"


def test_environment_variables_are_the_secret_and_credential_settings(
    package: dict[str, typing.Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = {v["name"]: v for v in package["environmentVariables"]}
    secrets = secret_fields()
    assert secrets >= {"token", "vault_token"}
    expected = secrets | companion_fields(monkeypatch)
    assert "vault_item_id" in expected
    assert set(variables) == {f"PANGEA_{name.upper()}" for name in expected}
    for name in expected:
        variable = variables[f"PANGEA_{name.upper()}"]
        assert variable["isSecret"] is (name in secrets), variable["name"]
        # Either PANGEA_TOKEN or the Vault pair: no single variable is required on its own.
        assert variable["isRequired"] is False, variable["name"]
        assert variable["description"].strip(), variable["name"]
        assert "default" not in variable and "value" not in variable, "no value ships in the registry entry"


def test_shape_follows_the_registry_schema(server: dict[str, typing.Any]) -> None:
    assert server["$schema"] == SCHEMA
    assert set(server) <= SERVER_KEYS
    assert {"name", "description", "version"} <= set(server)
    assert re.fullmatch(r"io\.github\.[A-Za-z0-9-]+/[a-zA-Z0-9._-]+", server["name"])
    assert server["name"].endswith("/pangea-mcp")
    assert 1 <= len(server["description"]) <= 100
    assert 1 <= len(server.get("title", "x")) <= 100
    assert set(server["repository"]) <= {"url", "source", "id", "subfolder"}
    assert server["repository"]["source"] == "github"
    for package in server["packages"]:
        assert set(package) <= PACKAGE_KEYS
        # One exact release: no "latest", no range.
        assert re.fullmatch(r"\d+\.\d+\.\d+([.+-][0-9A-Za-z.+-]+)?", package["version"])
        for variable in package.get("environmentVariables", []):
            assert set(variable) <= INPUT_KEYS
            assert variable.get("format", "string") in ("string", "number", "boolean", "filepath")


def test_repository_matches_the_project_urls(server: dict[str, typing.Any]) -> None:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert server["repository"]["url"] in urls.values()
    owner = server["repository"]["url"].removeprefix("https://github.com/").split("/")[0]
    assert server["name"].startswith(f"io.github.{owner}/")
