"""Docs drift: the README's configuration table lists exactly the settings the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from pangea_mcp.config import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_setting() -> None:
    table = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(PANGEA_[A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert documented == {f"PANGEA_{name.upper()}" for name in Settings.model_fields}


def test_readme_starts_with_the_two_commands() -> None:
    blocks = re.findall(r"```bash\n(.*?)\n```", README.read_text(), flags=re.DOTALL)
    assert blocks[0].startswith("pip install uv && uv sync --locked && uv run pangea-mcp call geolocate ")
    assert blocks[1] == "uv run pytest"
    assert "uv run pytest" in (README.parents[0] / ".ci" / "run").read_text()
