"""Dockerfile and docs/ deployment examples: parsed and checked (Docker cannot build here); install steps run."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from pangea_mcp import __version__
from pangea_mcp.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE|SIGNING_KEY|CREDENTIAL", re.I)
TOKEN_SHAPE = re.compile(r"\bpt[a-z]_[a-z0-9]{32}\b")
#: Non-secret settings the image may set (run-time environment still overrides them).
IMAGE_DEFAULTS = {"PANGEA_MCP_STATELESS": "true"}


# -- a small Dockerfile reader ---------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's words, or None for the shell form."""
        if not self.args.startswith("["):
            return None
        words = json.loads(self.args)
        assert isinstance(words, list) and all(isinstance(w, str) for w in words), self
        return words


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, args = joined.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    assert not pending, "the Dockerfile ends inside a continued instruction"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=_expand(words[0], global_args), name=name))
        elif not stages:
            assert ins.keyword == "ARG", f"line {ins.line}: only ARG may come before the first FROM"
            key, _, value = ins.args.partition("=")
            global_args[key] = value.strip('"')
        else:
            stages[-1].instructions.append(ins)
    return global_args, stages


def _expand(text: str, values: dict[str, str]) -> str:
    """${NAME} and $NAME from `values`; unknown names are left as they are."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, text)


def env_pairs(ins: Instruction) -> dict[str, str]:
    """ENV/ARG as NAME=value pairs (the legacy `ENV NAME value` form too)."""
    words = shlex.split(ins.args)
    if ins.keyword == "ENV" and len(words) >= 2 and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    pairs = {}
    for word in words:
        key, _, value = word.partition("=")
        pairs[key] = value
    return pairs


def run_flags(args: str) -> tuple[list[str], str]:
    """A RUN's BuildKit flags (--mount=..., --network=...) and its command."""
    flags = []
    rest = args
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.lstrip()
    return flags, rest


def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore matching, enough for the patterns this project uses (incl. ! and **)."""
    result = False
    parts = PurePosixPath(path).parts
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        regex = _pattern_regex(pattern)
        # A pattern matching a directory excludes everything below it.
        if any(regex.fullmatch("/".join(parts[: n + 1])) for n in range(len(parts))):
            result = not negate
    return result


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


# -- properties --------------------------------------------------------------------------------------


def test_multi_stage_with_a_named_builder(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    assert len(stages) >= 2
    builder, final = stages[0], stages[-1]
    assert builder.name == "builder"
    assert final.base == builder.base, "the venv's interpreter path must exist in the final image"
    assert "slim" in final.base


def test_uv_comes_from_pip_pinned_and_syncs_locked_without_dev(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    builder = stages[0]
    runs = [run_flags(ins.args)[1] for ins in builder.all("RUN")]
    installs = [cmd for cmd in runs if re.search(r"\bpip install\b", cmd)]
    assert installs, "uv is installed with pip (the uv image is not reachable from the build machines)"
    uv_args = {k: v for ins in builder.all("ARG") for k, v in env_pairs(ins).items()}
    assert re.search(r"""["']?uv==\d+\.\d+\.\d+["']?""", _expand(installs[0], uv_args)), installs[0]
    syncs = [cmd for cmd in runs if "uv sync" in cmd]
    assert syncs, "the builder runs uv sync"
    for cmd in syncs:
        assert "--locked" in cmd.split() and "--no-dev" in cmd.split(), cmd
    # The last sync installs the project itself, into the venv, not as a link to the sources.
    assert "--no-install-project" not in syncs[-1].split()
    assert "--no-editable" in syncs[-1].split()


def test_final_stage_copies_only_the_venv_and_runs_unprivileged(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    builder, final = stages[0], stages[-1]
    builder_env = {k: v for ins in builder.all("ENV") for k, v in env_pairs(ins).items()}
    venv = builder_env["UV_PROJECT_ENVIRONMENT"]
    copies = final.all("COPY") + final.all("ADD")
    assert copies, "the final stage copies the venv from the builder"
    for ins in copies:
        words = ins.args.split()
        assert words[0] == "--from=builder", f"line {ins.line}: nothing comes from the build context"
        assert words[1:] == [venv, venv], f"line {ins.line}: only the venv is copied"
    final_env = {k: v for ins in final.all("ENV") for k, v in env_pairs(ins).items()}
    assert final_env["PATH"].startswith(f"{venv}/bin:")

    users = final.all("USER")
    assert users, "the final stage sets a USER"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0"), "the final stage runs as root"
    assert final.instructions.index(users[-1]) > max(final.instructions.index(c) for c in copies)
    if user.isdigit():
        assert any(f"--uid {user}" in ins.args for ins in final.all("RUN")), "the user is created"


def test_healthcheck_asks_health_with_python(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    final = dockerfile[1][-1]
    (check,) = final.all("HEALTHCHECK")
    flags, _, command = check.args.partition("CMD ")
    assert "--interval=" in flags and "--timeout=" in flags
    words = json.loads(command)
    assert words[0] in ("python", "python3"), "the slim image has no curl or wget"
    assert "http://127.0.0.1:8080/health" in words[-1]
    assert "8080" in {p.split("/")[0] for ins in final.all("EXPOSE") for p in ins.args.split()}


def test_default_command_serves_http_on_all_interfaces(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    final = dockerfile[1][-1]
    assert not final.all("ENTRYPOINT"), "plain CMD, so `docker run -i IMAGE pangea-mcp` runs stdio"
    (cmd,) = final.all("CMD")
    words = cmd.exec_form
    assert words is not None, "exec form, so the server is PID 1 and receives SIGTERM"
    assert words[:2] == ["pangea-mcp", "serve"]

    def option(name: str) -> str:
        assert name in words, f"CMD lacks {name}"
        return words[words.index(name) + 1]

    assert option("--transport") == "http"
    assert option("--host") == "0.0.0.0"
    assert option("--port") == "8080"


def test_no_secret_is_baked_in(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    global_args, stages = dockerfile
    text = DOCKERFILE.read_text()
    assert not TOKEN_SHAPE.search(text), "a Pangea token in the Dockerfile"
    declared = dict(global_args)
    for stage in stages:
        for ins in stage.all("ENV") + stage.all("ARG"):
            declared |= env_pairs(ins)
        for ins in stage.all("COPY") + stage.all("ADD"):
            assert ".env" not in ins.args.split(), f"line {ins.line} copies a .env file"
    for name in declared:
        if name in IMAGE_DEFAULTS:
            continue
        assert not name.upper().startswith("PANGEA_"), f"{name}: settings come from the run-time environment"
        assert not SECRET_NAME.search(name), f"{name} looks like a secret baked into the image"


def test_the_image_serves_stateless_by_default(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    """Replicas behind a plain load balancer need no sticky sessions; the only setting baked in."""
    final = dockerfile[1][-1]
    env = {k: v for ins in final.all("ENV") for k, v in env_pairs(ins).items()}
    baked = {name: value for name, value in env.items() if name.startswith("PANGEA_")}
    assert baked == IMAGE_DEFAULTS
    fields = {f"PANGEA_{name.upper()}" for name in Settings.model_fields}
    assert set(baked) <= fields
    assert Settings(_env_file=None, mcp_stateless=baked["PANGEA_MCP_STATELESS"]).mcp_stateless is True  # type: ignore[call-arg]


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = ignore_patterns()
    for path in (
        ".env",
        ".env.local",
        "prod.env",
        ".venv/bin/python",
        ".git/HEAD",
        "pangea_mcp/__pycache__/x.pyc",
    ):
        assert ignored(path, patterns), f"{path} would enter the build context"
    for path in (
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "pangea_mcp/__init__.py",
        "pangea_mcp/services/vault.py",
    ):
        assert not ignored(path, patterns), f"{path} is needed by the build"


# -- the builder's own install steps, run in a clean copy -------------------------------------------


def _copy_into(sources: list[str], dest: Path, patterns: list[str]) -> None:
    """COPY from the build context, honouring .dockerignore (a directory's contents go into `dest`)."""
    for source in sources:
        origin = ROOT / source
        assert origin.exists(), f"COPY {source}: not in the repository"
        assert not ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
        if origin.is_dir():
            for path in sorted(origin.rglob("*")):
                if path.is_file() and not ignored(path.relative_to(ROOT).as_posix(), patterns):
                    out = dest / path.relative_to(origin)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, out)
        else:
            target = dest / origin.name if dest.is_dir() else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def _run_builder(stage: Stage, root: Path, offline: bool) -> None:
    """Replay the builder stage under `root` (standing for /): ENV, WORKDIR, COPY and the uv RUN steps.

    The `pip install uv` step is skipped: the uv running this test stands in for it.
    """
    patterns = ignore_patterns()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(root)),
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", ""),
    }
    if not env["UV_CACHE_DIR"]:
        del env["UV_CACHE_DIR"]
    if offline:
        env["UV_OFFLINE"] = "1"
    args: dict[str, str] = {}
    workdir = root

    def host(path: str) -> Path:
        return root / path.lstrip("/") if path.startswith("/") else workdir / path

    for ins in stage.instructions:
        if ins.keyword == "ARG":
            args |= env_pairs(ins)
        elif ins.keyword == "ENV":
            for key, value in env_pairs(ins).items():
                value = _expand(value, args | env)
                env[key] = str(host(value)) if value.startswith("/") else value
        elif ins.keyword == "WORKDIR":
            workdir = host(ins.args)
            workdir.mkdir(parents=True, exist_ok=True)
        elif ins.keyword == "COPY":
            words = ins.args.split()
            assert not words[0].startswith("--"), f"line {ins.line}: unexpected COPY flag"
            dest = host(words[-1])
            if words[-1].endswith("/"):
                dest.mkdir(parents=True, exist_ok=True)
            _copy_into(words[:-1], dest, patterns)
        elif ins.keyword == "RUN":
            _, command = run_flags(ins.args)
            if re.search(r"\bpip install\b", command):
                continue
            assert "uv " in command, f"line {ins.line}: unexpected build step {command!r}"
            done = subprocess.run(
                ["/bin/sh", "-c", _expand(command, args)],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert done.returncode == 0, f"line {ins.line}: {command}\n{done.stderr[-3000:]}"
        else:
            pytest.fail(f"line {ins.line}: the test does not know how to replay {ins.keyword}")


def test_builder_install_steps_produce_a_working_venv(
    dockerfile: tuple[dict[str, str], list[Stage]], tmp_path: Path
) -> None:
    """Slow-ish (about 10-20 s with a warm uv cache): a full `uv sync --locked --no-dev` into a fresh venv."""
    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH")
    _, stages = dockerfile
    builder = stages[0]
    started = time.monotonic()
    root = tmp_path / "offline"
    try:
        # The uv cache normally holds every locked wheel (CI ran `uv sync --locked` first).
        _run_builder(builder, root, offline=True)
    except AssertionError:
        root = tmp_path / "online"
        _run_builder(builder, root, offline=False)

    venv_path = {k: v for ins in builder.all("ENV") for k, v in env_pairs(ins).items()}[
        "UV_PROJECT_ENVIRONMENT"
    ]
    venv = root / venv_path.lstrip("/")
    # The final stage gets the venv only: the copied sources must not be needed.
    workdir = next(ins.args for ins in builder.all("WORKDIR"))
    shutil.rmtree(root / workdir.lstrip("/") / "pangea_mcp")

    clean_env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    version = subprocess.run(
        [str(venv / "bin" / "pangea-mcp"), "--version"],
        capture_output=True,
        text=True,
        env=clean_env,
        cwd=tmp_path,
        timeout=60,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"pangea-mcp {__version__}"

    python = str(venv / "bin" / "python")
    probe = (
        "import importlib.util as u; print(all(u.find_spec(m) is None for m in ('pytest', 'ruff', 'mypy')))"
    )
    no_dev = subprocess.run([python, "-c", probe], capture_output=True, text=True, env=clean_env, timeout=60)
    assert no_dev.stdout.strip() == "True", "dev dependencies were installed"
    where = subprocess.run(
        [python, "-c", "import pangea_mcp; print(pangea_mcp.__file__)"],
        capture_output=True,
        text=True,
        env=clean_env,
        cwd=tmp_path,
        timeout=60,
    )
    assert where.stdout.strip().startswith(str(venv)), "the package is not installed inside the venv"
    assert time.monotonic() - started < 120


# -- the deployment examples in docs/ ----------------------------------------------------------------


def _yaml_documents(name: str) -> list[dict[str, Any]]:
    yaml = pytest.importorskip("yaml")
    return [doc for doc in yaml.safe_load_all((ROOT / "docs" / name).read_text()) if doc]


def _settings_named(names: set[str]) -> None:
    """Every PANGEA_* name is a setting. The HTTP transport's PANGEA_MCP_* ones are checked once it exists."""
    fields = {f"PANGEA_{field.upper()}" for field in Settings.model_fields}
    transport_built = "mcp_transport" in Settings.model_fields
    for name in names:
        if name.startswith("PANGEA_MCP_") and not transport_built:
            continue
        assert name in fields, f"{name} is not a setting (pangea_mcp/config.py)"


def test_compose_example_takes_secrets_from_an_env_file_and_checks_health() -> None:
    (compose,) = _yaml_documents("compose.yaml")
    service = compose["services"]["pangea-mcp"]
    assert service["env_file"], "secrets come from an env_file"
    assert ignored(".env", ignore_patterns())
    environment = service.get("environment", {})
    assert not any(SECRET_NAME.search(name) for name in environment), "a secret written into compose.yaml"
    assert not TOKEN_SHAPE.search((ROOT / "docs" / "compose.yaml").read_text())
    _settings_named({name for name in environment if name.startswith("PANGEA_")})
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD" and "http://127.0.0.1:8080/health" in test[-1]
    assert service["ports"] == ["127.0.0.1:8080:8080"], "published on the host's loopback only"
    agent = compose["services"]["agent"]
    assert agent["depends_on"]["pangea-mcp"]["condition"] == "service_healthy"
    assert agent["environment"]["MCP_SERVER_URL"] == "http://pangea-mcp:8080/mcp"
    assert "env_file" not in agent, "the agent never gets Pangea's credentials"
    assert set(agent["environment"]) == {"MCP_SERVER_URL", "MCP_BEARER_TOKEN"}
    assert agent["environment"]["MCP_BEARER_TOKEN"].startswith("${PANGEA_MCP_AUTH_TOKEN:?")


def test_kubernetes_example_runs_replicas_unprivileged_with_probes_and_a_secret() -> None:
    documents = {doc["kind"]: doc for doc in _yaml_documents("kubernetes.yaml")}
    deployment, service = documents["Deployment"], documents["Service"]
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    command = container["command"]
    assert command[command.index("--transport") + 1] == "http"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = int(command[command.index("--port") + 1])
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": port}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"

    env = {item["name"]: item for item in container["env"]}
    for name, item in env.items():
        if SECRET_NAME.search(name):
            assert "value" not in item, f"{name} is written into the manifest"
            assert item["valueFrom"]["secretKeyRef"]["name"], name
    assert "secretKeyRef" in env["PANGEA_TOKEN"]["valueFrom"]
    assert "secretKeyRef" in env["PANGEA_MCP_AUTH_TOKEN"]["valueFrom"]
    _settings_named({name for name in env if name.startswith("PANGEA_")})

    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"].get("sessionAffinity", "None") == "None", "no sticky sessions"
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {"http", port}
