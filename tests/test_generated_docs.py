"""docs/configuration.md and docs/tools.md are generated from the code: they must be current."""

from __future__ import annotations

import asyncio
import difflib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel, Field, SecretStr

from pangea_mcp.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "uv run python scripts/gen_docs.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_docs", module)
    spec.loader.exec_module(module)
    return module


gen_docs = _load_script()


@pytest.fixture(scope="module")
def rendered() -> dict[Path, str]:
    result: dict[Path, str] = gen_docs.render()
    return result


@pytest.fixture(scope="module")
def tools() -> list[Any]:
    with gen_docs.code_defaults():
        return list(asyncio.run(gen_docs.list_tools()))


def test_committed_docs_are_current(rendered: dict[Path, str]) -> None:
    for path, fresh in rendered.items():
        name = path.relative_to(ROOT).as_posix()
        assert path.exists(), f"{name} is missing: run `{COMMAND}`"
        committed = path.read_text()
        if committed != fresh:
            diff = difflib.unified_diff(
                committed.splitlines(),
                fresh.splitlines(),
                f"{name} (committed)",
                f"{name} (code)",
                lineterm="",
            )
            shown = "\n".join(list(diff)[:40])
            pytest.fail(f"{name} is stale: run `{COMMAND}` and commit the result.\n{shown}")


def test_output_ignores_this_shells_settings(
    rendered: dict[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PANGEA_SERVICES", "embargo")
    monkeypatch.setenv("PANGEA_ALLOW_UNREDACT", "false")
    monkeypatch.setenv("PANGEA_VAULT_REVEAL_VALUES", "true")
    assert gen_docs.render() == rendered
    assert Settings(_env_file=None).services == ("embargo",), "the variables are restored afterwards"


def test_every_setting_is_a_row_and_secrets_show_no_default(rendered: dict[Path, str]) -> None:
    text = rendered[gen_docs.CONFIGURATION]
    rows = dict(re.findall(r"^\| `(PANGEA_[A-Z_]+)` \| (.*) \|$", text, flags=re.MULTILINE))
    assert list(rows) == [f"PANGEA_{name.upper()}" for name in Settings.model_fields]
    for name, info in Settings.model_fields.items():
        kind, default, description = rows[f"PANGEA_{name.upper()}"].split(" | ", 2)
        assert description.replace("\\|", "|").replace("&lt;", "<") == " ".join(
            (info.description or "").split()
        )
        if gen_docs._is_secret(info.annotation):
            assert (kind, default) == ("secret", "unset")
    assert rows["PANGEA_REQUEST_TIMEOUT"].startswith("number, > 0, ≤ 600 | `30` |")
    assert rows["PANGEA_ALLOW_UNREDACT"].startswith("boolean | `true` |")


def test_a_secret_with_a_default_is_still_shown_unset() -> None:
    class Example(BaseModel):
        key: SecretStr = Field(default=SecretStr("do-not-print"))
        retries: int = Field(default=3, ge=0)

    assert gen_docs._setting_default(Example.model_fields["key"]) == "unset"
    assert gen_docs._setting_type(Example.model_fields["key"]) == "secret"
    assert gen_docs._setting_default(Example.model_fields["retries"]) == "`3`"


def test_every_tool_has_its_section_arguments_and_result_fields(
    rendered: dict[Path, str], tools: list[Any]
) -> None:
    text = rendered[gen_docs.TOOLS]
    headings = re.findall(r"^## `([a-z_]+)`", text, flags=re.MULTILINE)
    assert headings == [tool.name for tool in tools]
    assert {"unredact", "generate_key", "delete_vault_item"} <= set(headings)
    sections = dict(zip(headings, re.split(r"^## `[a-z_]+`.*$", text, flags=re.MULTILINE)[1:], strict=True))
    for tool in tools:
        section = sections[tool.name]
        assert (tool.description or "").strip() in section
        for argument in tool.input_schema.get("properties", {}):
            required = "yes" if argument in tool.input_schema.get("required", []) else "no"
            assert re.search(rf"^\| `{argument}` \| .* \| {required} \|", section, flags=re.MULTILINE), (
                tool.name,
                argument,
            )
        for field in (tool.output_schema or {}).get("properties", {}):
            assert f"| `{field}` |" in section, (tool.name, field)
    delete = sections["delete_vault_item"]
    assert "destructive: yes" in delete and "read-only: no" in delete


def test_schema_types_read_well() -> None:
    schema_type = gen_docs._schema_type
    assert schema_type({"anyOf": [{"type": "string"}, {"type": "null"}]}) == "string | null"
    assert schema_type({"type": "array", "items": {"type": "integer"}}) == "array of integer"
    assert schema_type({"enum": ["asc", "desc"], "type": "string"}) == '"asc" | "desc"'
    limits = gen_docs._schema_limits(
        {"type": "array", "minItems": 1, "maxItems": 100, "items": {"pattern": "^a$"}}
    )
    assert limits == ["items ≥ 1", "items ≤ 100", "each matches `^a$`"]
    assert gen_docs._cell("a | b\nc <d>") == "a \\| b c &lt;d>"
