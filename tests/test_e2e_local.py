"""End to end with no Pangea account: the installed console script on the local backend.

The child gets no PANGEA_* credential at all, and HOME / XDG directories inside the test's temporary
directory, so the local audit log and its signing key are created there (never in the developer's home).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path
from typing import TextIO

import anyio
import pytest

from pangea_mcp.local import LOCAL_TOOLS
from tests.e2e_common import SCRIPT, text_of
from tests.test_e2e_stdio import SESSION_TIMEOUT, Transcript, connect, read_back, validate_output

README = Path(__file__).resolve().parents[1] / "README.md"
LOCAL_TOOL_NAMES = [tool for tools in LOCAL_TOOLS.values() for tool in tools]


def local_env(home: Path, **settings: str) -> dict[str, str]:
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "PATH": os.environ.get("PATH", ""),
    }
    env.update({f"PANGEA_{name.upper()}": value for name, value in settings.items()})
    return env


@pytest.fixture
def stderr_file(tmp_path: Path) -> TextIO:
    return (tmp_path / "stderr.log").open("w+", encoding="utf-8")


async def test_no_account_serves_exactly_the_local_tools(tmp_path: Path, stderr_file: TextIO) -> None:
    transcript = Transcript()
    with anyio.fail_after(SESSION_TIMEOUT):
        async with connect(local_env(tmp_path), tmp_path, stderr_file, transcript) as session:
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            assert sorted(tools) == sorted(LOCAL_TOOL_NAMES)

            geo = await session.call_tool("geolocate", {"ipAddresses": ["8.8.8.8", "10.0.0.1"]})
            found = validate_output(tools["geolocate"].output_schema or {}, geo)
            google, private = found["results"]
            assert google["country_code"] == "US"
            assert private["scope"] == "private"

            text = "Write to jane.doe@example.com, card 4111 1111 1111 1111."
            redacted = await session.call_tool("redact", {"text": text})
            result = validate_output(tools["redact"].output_schema or {}, redacted)
            assert result["count"] == 2
            assert "jane.doe@example.com" not in json.dumps(result)
            assert "4111" not in json.dumps(result)

            logged = await session.call_tool(
                "log_entry", {"event": {"message": "local e2e", "actor": "test"}}
            )
            validate_output(tools["log_entry"].output_schema or {}, logged)
            searched = await session.call_tool("search_log", {"query": "actor:test"})
            found = validate_output(tools["search_log"].output_schema or {}, searched)
            assert [e["event"]["message"] for e in found["events"]] == ["local e2e"]
            assert found["events"][0]["verification"]["outcome"] == "verified", text_of(searched)

            hidden = await session.call_tool("lookup_ip_address_reputation", {"ipAddresses": ["8.8.8.8"]})
            assert hidden.is_error

    stderr = read_back(stderr_file)
    notice = [line for line in stderr.splitlines() if "local backend" in line]
    assert notice, stderr
    assert "lookup_ip_address_reputation" in notice[0]
    key = tmp_path / "config" / "pangea-mcp" / "audit-signing-key.pem"
    assert key.exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "data" / "pangea-mcp" / "audit.sqlite3").exists()


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        env=local_env(home),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=SESSION_TIMEOUT,
        check=False,
    )


def readme_calls() -> list[list[str]]:
    """The `pangea-mcp call` commands of the README's first command, as argument lists."""
    first = re.findall(r"```bash\n(.*?)\n```", README.read_text(encoding="utf-8"), flags=re.DOTALL)[0]
    calls = [shlex.split(part) for part in first.split(" && ") if part.startswith("uv run pangea-mcp call ")]
    return [words[3:] for words in calls]


def test_readme_first_command_prints_a_real_geolocation_and_a_real_redaction(tmp_path: Path) -> None:
    geolocate, redact = readme_calls()
    assert geolocate[:2] == ["call", "geolocate"] and redact[:2] == ["call", "redact"]

    geo = run(tmp_path, *geolocate)
    assert geo.returncode == 0, geo.stderr
    results = json.loads(geo.stdout)["results"]
    assert [(r["country_code"], r["as_name"]) for r in results] == [("US", "GOOGLE"), ("US", "CLOUDFLARENET")]

    red = run(tmp_path, *redact)
    assert red.returncode == 0, red.stderr
    redacted = json.loads(red.stdout)
    assert redacted["count"] == 3
    assert redacted["redacted_text"] == "Mail <EMAIL_ADDRESS> or call <PHONE_NUMBER>, card <CREDIT_CARD>"


def test_tools_command_lists_the_local_tools(tmp_path: Path) -> None:
    done = run(tmp_path, "tools")
    assert done.returncode == 0, done.stderr
    names = [
        line.split(" ", 1)[0].rstrip(":") for line in done.stdout.splitlines() if not line.startswith(" ")
    ]
    assert sorted(names) == sorted(LOCAL_TOOL_NAMES)


def test_call_with_bad_json_exits_2_without_traceback(tmp_path: Path) -> None:
    done = run(tmp_path, "call", "redact", "--args", "{not json")
    assert done.returncode == 2
    assert "--args" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
