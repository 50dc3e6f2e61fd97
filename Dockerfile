# pangea-mcp container: streamable HTTP on 0.0.0.0:8080 (/mcp), bearer auth required.
#
#   docker build -t pangea-mcp .
#   docker run --rm -p 8080:8080 --env-file pangea.env pangea-mcp
#
# pangea.env holds PANGEA_MCP_AUTH_TOKEN plus PANGEA_TOKEN (or PANGEA_VAULT_TOKEN + PANGEA_VAULT_ITEM_ID).
# Nothing secret is baked into the image: every credential comes from the environment at run time.
# stdio instead of HTTP: docker run -i --rm --env-file pangea.env pangea-mcp pangea-mcp

ARG PYTHON_IMAGE=python:3.11-slim

# -- builder: resolve the locked runtime dependencies into /app/.venv --------------------------------
FROM ${PYTHON_IMAGE} AS builder

# Only PyPI is reachable from our build machines (no ghcr.io uv image), so uv comes from pip, pinned.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project

# Then the package itself, installed into the venv (not editable), so the final stage needs no sources.
COPY README.md ./
COPY pangea_mcp ./pangea_mcp
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# -- final: the venv on a clean interpreter, run as an unprivileged user -------------------------------
FROM ${PYTHON_IMAGE}

RUN groupadd --system --gid 10001 pangea \
    && useradd --system --uid 10001 --gid pangea --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin pangea

COPY --from=builder /app/.venv /app/.venv

# Stateless HTTP: no per-session state in the process, so any number of replicas can sit behind a
# plain load balancer. Not a secret; override with -e PANGEA_MCP_STATELESS=false for SSE sessions.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PANGEA_MCP_STATELESS=true

WORKDIR /app
USER 10001:10001

EXPOSE 8080

# Liveness only (/ready is the readiness route, for orchestrators). The slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]

# HTTP on all interfaces of the container. The server refuses to start on a non-loopback host without
# PANGEA_MCP_AUTH_TOKEN (or a JWT key), so an unconfigured container fails instead of serving
# unauthenticated. SIGTERM (docker stop) lets calls in flight finish, PANGEA_MCP_SHUTDOWN_TIMEOUT at most.
CMD ["pangea-mcp", "serve", "--transport", "http", "--host", "0.0.0.0", "--port", "8080"]
