"""The local audit log's files: where they live, and the Ed25519 key that signs its roots."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import platformdirs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pangea_mcp import audit_verify as av
from pangea_mcp.config import Settings
from pangea_mcp.local.audit_types import LocalAuditError

log = logging.getLogger(__name__)


def store_paths(settings: Settings) -> tuple[Path, Path]:
    """The SQLite file and the root-signing key: the settings, else the user's data and config dirs."""
    app = "pangea-mcp"
    db = settings.local_audit_db or platformdirs.user_data_path(app, appauthor=False) / "audit.sqlite3"
    key = settings.local_signing_key or (
        platformdirs.user_config_path(app, appauthor=False) / "audit-signing-key.pem"
    )
    return db.expanduser(), key.expanduser()


def _fsync_dir(path: Path) -> None:
    if os.name == "posix":
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _create_key(path: Path) -> Ed25519PrivateKey:
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return load_signing_key(path, create=False)
    with os.fdopen(fd, "wb") as file:
        if os.name == "posix":
            os.fchmod(file.fileno(), 0o600)
        file.write(pem)
        file.flush()
        os.fsync(file.fileno())
    _fsync_dir(path.parent)
    log.info("created the local audit root-signing key %s", path)
    return key


def load_signing_key(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The Ed25519 key that signs local roots; created (mode 0600, directory 0700) when missing.

    An existing key that group or others may access is refused rather than trusted.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        if not create:
            raise LocalAuditError(f"the local audit signing key {path} does not exist") from None
        return _create_key(path)
    if os.name == "posix" and stat.S_IMODE(info.st_mode) & 0o077:
        raise LocalAuditError(
            f"the local audit signing key {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}` and start again"
        )
    try:
        text = path.read_text(encoding="utf-8")
        return av.load_private_key(text)
    except (OSError, UnicodeDecodeError, av.ProofError) as exc:
        raise LocalAuditError(
            f"the local audit signing key {path} is not usable ({exc}); it must be an unencrypted "
            "Ed25519 PKCS#8 PEM key (BEGIN PRIVATE KEY)"
        ) from None
