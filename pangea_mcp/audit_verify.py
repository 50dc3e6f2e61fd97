"""Secure Audit Log tamper-proofing: canonical JSON, envelope hashes, Merkle proofs, Ed25519 (no I/O).

Everything here is a pure function over data Pangea returned (pangea-api.md section 6). Malformed input
never raises out of a `verify_*`/`check_*` function: it is reported as a failed check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AfterValidator, SecretStr

Status = Literal["verified", "failed", "not_available"]
SignatureStatus = Literal["verified", "failed", "unsigned"]

# Pangea sends lowercase hex; anything else (upper case, spaces that bytes.fromhex would skip) is refused.
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ProofError(ValueError):
    """A proof, hash or key that is not in the format Pangea defines."""


# -- canonical JSON and hashes --------------------------------------------------------------------


def canonical_json(value: object) -> bytes:
    """The exact bytes the Pangea SDKs hash and sign (pangea-api.md 6.2)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True)
    return text.encode("utf-8")


def _without_nulls(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


def envelope_hash(envelope: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of an envelope as received: top-level nulls dropped, strings hashed as strings."""
    return hashlib.sha256(canonical_json(_without_nulls(envelope))).hexdigest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Inner Merkle node: SHA-256 of the two raw digests, without RFC 6962 domain prefixes."""
    return hashlib.sha256(left + right).digest()


def parse_hash(text: object) -> bytes:
    if not isinstance(text, str) or not _HEX64.fullmatch(text):
        raise ProofError("not a 64-digit lowercase hex SHA-256 hash")
    return bytes.fromhex(text)


# -- membership proofs (6.5) ----------------------------------------------------------------------

ProofStep = tuple[bool, bytes]  # (sibling is on the left, sibling digest)


def parse_membership_proof(proof: str) -> list[ProofStep]:
    """`l:<hex>,r:<hex>,...` from the leaf upwards; the empty string is the empty proof."""
    if proof == "":
        return []
    steps = []
    for item in proof.split(","):
        side, sep, sibling = item.partition(":")
        if not sep or side not in ("l", "r"):
            raise ProofError(f"proof item {item[:80]!r} is not l:<hash> or r:<hash>")
        steps.append((side == "l", parse_hash(sibling)))
    return steps


def fold_proof(leaf: bytes, steps: Sequence[ProofStep]) -> bytes:
    node = leaf
    for left, sibling in steps:
        node = node_hash(sibling, node) if left else node_hash(node, sibling)
    return node


def verify_membership(record_hash: str, root_hash: str, proof: str) -> bool:
    """True when `proof` leads from `record_hash` to `root_hash`."""
    try:
        return fold_proof(parse_hash(record_hash), parse_membership_proof(proof)) == parse_hash(root_hash)
    except ProofError:
        return False


# -- consistency proofs (6.6) ---------------------------------------------------------------------


def parse_consistency_proof(proof: Sequence[str]) -> list[tuple[bytes, list[ProofStep]]]:
    """Items `x:<hex>,<membership proof of that hash in the new root>`, right-most subtree first."""
    items = []
    for item in proof:
        if not isinstance(item, str):
            raise ProofError("consistency proof item is not a string")
        head, _, rest = item.partition(",")
        tag, sep, digest = head.partition(":")
        if tag != "x" or not sep:
            raise ProofError(f"consistency item {head[:80]!r} is not x:<hash>")
        items.append((parse_hash(digest), parse_membership_proof(rest)))
    if not items:
        raise ProofError("empty consistency proof")
    return items


def consistency_old_root(proof: Sequence[str]) -> str:
    """The old root the proof claims (its subtree roots folded, each later one a left sibling)."""
    items = parse_consistency_proof(proof)
    acc = items[0][0]
    for digest, _ in items[1:]:
        acc = node_hash(digest, acc)
    return acc.hex()


def verify_consistency(old_root_hash: str, new_root_hash: str, proof: Sequence[str]) -> bool:
    """True when the tree with `new_root_hash` extends the one with `old_root_hash` (nothing rewritten)."""
    try:
        items = parse_consistency_proof(proof)
        new_root = parse_hash(new_root_hash)
        if bytes.fromhex(consistency_old_root(proof)) != parse_hash(old_root_hash):
            return False
        return all(fold_proof(digest, steps) == new_root for digest, steps in items)
    except ProofError:
        return False


# -- Ed25519 signatures (6.7) ---------------------------------------------------------------------


def signed_bytes(event: Mapping[str, Any]) -> bytes:
    """What is signed: the canonical JSON of the event itself (not its hash), nulls dropped."""
    return canonical_json(_without_nulls(event))


def _strict_b64(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError("not base64") from None
    # Refuse non-canonical encodings (spare bits set), so a changed character never goes unnoticed.
    if base64.b64encode(raw).decode("ascii") != text:
        raise ProofError("not canonical base64")
    return raw


@lru_cache(maxsize=256)  # a log holds few distinct keys; parsing PEM costs more than verifying
def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key as Pangea stores it: JSON {"algorithm","key"}, PEM, OpenSSH, or legacy base64."""
    key_text = text
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        if not isinstance(parsed.get("key"), str):
            raise ProofError("public_key JSON has no key")
        if str(parsed.get("algorithm", "ED25519")).upper() != "ED25519":
            raise ProofError("public key algorithm is not ED25519")
        key_text = parsed["key"]
    try:
        if key_text.startswith("----"):
            key: object = serialization.load_pem_public_key(key_text.encode())
        elif key_text.startswith("ssh-"):
            key = serialization.load_ssh_public_key(key_text.encode())
        else:
            # Legacy: raw or DER-wrapped key in base64; the key is the last 32 bytes.
            key = Ed25519PublicKey.from_public_bytes(_strict_b64(key_text)[-32:])
    except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
        raise ProofError(f"unreadable public key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ProofError("public key is not an Ed25519 key")
    return key


def verify_signature(event: Mapping[str, Any], signature: str, public_key: str) -> bool:
    try:
        load_public_key(public_key).verify(_strict_b64(signature), signed_bytes(event))
    except (ProofError, InvalidSignature):
        return False
    return True


def load_private_key(pem: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PKCS#8 PEM text (literal "\\n" sequences accepted for one-line env)."""
    if "\n" not in pem and "\\n" in pem:
        pem = pem.replace("\\n", "\n")
    try:
        key = serialization.load_pem_private_key(pem.strip().encode() + b"\n", password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ProofError("not an unencrypted PEM private key (BEGIN PRIVATE KEY)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ProofError("the private key is not an Ed25519 key")
    return key


def _check_signing_key(value: SecretStr) -> SecretStr:
    load_private_key(value.get_secret_value())
    return value


#: The settings type of PANGEA_AUDIT_SIGNING_KEY: checked at startup, never echoed.
SigningKey = Annotated[SecretStr, AfterValidator(_check_signing_key)]


def public_key_field(key: Ed25519PrivateKey) -> str:
    """The `public_key` value current SDKs send: canonical JSON of algorithm and PEM key."""
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return canonical_json({"algorithm": "ED25519", "key": pem.decode("ascii")}).decode("utf-8")


def sign_event(event: Mapping[str, Any], key: Ed25519PrivateKey) -> str:
    """Standard base64 of the Ed25519 signature over the event's canonical bytes."""
    return base64.b64encode(key.sign(signed_bytes(event))).decode("ascii")


# -- one record, all checks ----------------------------------------------------------------------


@dataclass(frozen=True)
class Root:
    """A Merkle root as Pangea describes it (published or not)."""

    root_hash: str
    size: int | None = None
    consistency_proof: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Checks:
    """Every check of one record, each labelled, with the reason for anything not verified."""

    hash: Status
    membership: Status
    consistency: Status
    signature: SignatureStatus
    notes: tuple[str, ...] = field(default=())
    #: False when there is nothing to be consistent with (unpublished record, first root, first write).
    consistency_applies: bool = True
    #: Whether something independent of the answer being checked vouches for its root (a root fetched
    #: separately from /v1/root, or a root this server saw earlier). Without it a forged answer could
    #: carry a matching forged root, so the outcome is at best "incomplete".
    anchored: bool = True

    @property
    def outcome(self) -> Literal["verified", "failed", "incomplete"]:
        labels = (self.hash, self.membership, self.consistency, self.signature)
        if "failed" in labels:
            return "failed"
        consistent = self.consistency == "verified" or not self.consistency_applies
        if self.hash == "verified" and self.membership == "verified" and consistent and self.anchored:
            return "verified"
        return "incomplete"


def check_signature(envelope: Mapping[str, Any], notes: list[str]) -> SignatureStatus:
    signature = envelope.get("signature")
    public_key = envelope.get("public_key")
    event = envelope.get("event")
    if signature is None and public_key is None:
        return "unsigned"
    if not isinstance(signature, str) or not isinstance(public_key, str) or not isinstance(event, dict):
        notes.append("signature: the envelope has a signature or a public key but not both")
        return "failed"
    if verify_signature(event, signature, public_key):
        return "verified"
    notes.append("signature: does not match the event and public key")
    return "failed"


def _leaf(record: Mapping[str, Any], notes: list[str]) -> tuple[Status, str | None]:
    """The hash check, and the leaf to prove membership of (the recomputed hash when possible)."""
    claimed = record.get("hash")
    envelope = record.get("envelope")
    if not isinstance(envelope, dict):
        notes.append("hash: no envelope to recompute the hash from")
        return "not_available", claimed if isinstance(claimed, str) else None
    computed = envelope_hash(envelope)
    if claimed is None:
        notes.append("hash: Pangea sent no hash; membership is checked for the recomputed one")
        return "not_available", computed
    if claimed != computed:
        notes.append("hash: the envelope does not hash to the record's hash (content changed)")
        return "failed", computed
    return "verified", computed


def _membership(leaf: str | None, proof: object, root: Root | None, what: str, notes: list[str]) -> Status:
    if leaf is None:
        notes.append("membership: no hash to prove")
        return "not_available"
    if proof is None:
        notes.append("membership: Pangea sent no membership proof")
        return "not_available"
    if root is None:
        notes.append(f"membership: Pangea sent no {what} root")
        return "not_available"
    if isinstance(proof, str) and verify_membership(leaf, root.root_hash, proof):
        return "verified"
    notes.append(f"membership: the proof does not lead to the {what} root")
    return "failed"


def _consistency(record: Mapping[str, Any], roots: Mapping[int, Root], notes: list[str]) -> Status:
    index = record.get("leaf_index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        notes.append("consistency: Pangea sent no leaf_index")
        return "not_available"
    old, new = roots.get(index), roots.get(index + 1)
    if old is None or new is None:
        missing = index if old is None else index + 1
        notes.append(f"consistency: the published root of size {missing} is not available")
        return "not_available"
    if new.consistency_proof is None:
        notes.append(f"consistency: the root of size {index + 1} came without a consistency proof")
        return "not_available"
    if verify_consistency(old.root_hash, new.root_hash, new.consistency_proof):
        return "verified"
    notes.append(f"consistency: the root of size {index + 1} does not extend the root of size {index}")
    return "failed"


def check_record(
    record: Mapping[str, Any],
    *,
    root: Root | None,
    unpublished_root: Root | None,
    roots: Mapping[int, Root],
) -> Checks:
    """Check one search record: envelope hash, membership, consistency of its publication, signature.

    `root`/`unpublished_root` come with the search page; `roots` maps tree sizes to roots obtained
    separately (for consistency between sizes leaf_index and leaf_index + 1, and to cross-check `root`).
    """
    notes: list[str] = []
    hash_status, leaf = _leaf(record, notes)
    published = bool(record.get("published"))
    anchor = root if published else unpublished_root
    membership = _membership(
        leaf, record.get("membership_proof"), anchor, "published" if published else "unpublished", notes
    )
    anchored = False
    if published and root is not None and root.size is not None:
        pinned = roots.get(root.size)
        if pinned is not None and pinned.root_hash != root.root_hash:
            notes.append(f"membership: the search's root differs from Pangea's root of size {root.size}")
            membership = "failed"
        anchored = pinned is not None and pinned.root_hash == root.root_hash
    if published and not anchored and membership == "verified":
        notes.append(
            "membership: the search's root could not be cross-checked against a separately fetched root"
        )
    if not published and membership == "verified":
        notes.append(
            "membership: only against the unpublished root sent in the same answer (not independent)"
        )
    applies = True
    if not published:
        notes.append("consistency: not published yet; checked against the unpublished root only")
        consistency: Status = "not_available"
        applies = False
    elif record.get("leaf_index") == 0:
        notes.append("consistency: first root of the tree; there is no earlier root to compare with")
        consistency = "not_available"
        applies = False
    else:
        consistency = _consistency(record, roots, notes)
    envelope = record.get("envelope")
    signature = check_signature(envelope, notes) if isinstance(envelope, dict) else "unsigned"
    return Checks(hash_status, membership, consistency, signature, tuple(notes), applies, anchored)


def check_log_result(result: Mapping[str, Any], *, prev_root: str | None) -> Checks:
    """Check a verbose /v1/log result (6.8): hash, membership in the unpublished root, consistency."""
    notes: list[str] = []
    hash_status, leaf = _leaf(result, notes)
    unpublished = result.get("unpublished_root")
    root = Root(unpublished) if isinstance(unpublished, str) else None
    membership = _membership(leaf, result.get("membership_proof"), root, "unpublished", notes)
    proof = result.get("consistency_proof")
    applies = prev_root is not None
    if prev_root is None:
        # A proof from a root this server never saw proves nothing (pangea-api.md 6.6a).
        notes.append("consistency: no earlier root known to this server to compare with")
        consistency: Status = "not_available"
    elif proof is None or root is None:
        notes.append("consistency: Pangea sent no consistency proof from the previous root")
        consistency = "not_available"
    elif isinstance(proof, list) and verify_consistency(prev_root, root.root_hash, proof):
        consistency = "verified"
    else:
        notes.append("consistency: the new root does not extend the previous root")
        consistency = "failed"
    envelope = result.get("envelope")
    signature = check_signature(envelope, notes) if isinstance(envelope, dict) else "unsigned"
    # Anchored only by a root this server saw before (the previous write's), extended consistently.
    return Checks(
        hash_status, membership, consistency, signature, tuple(notes), applies, consistency == "verified"
    )
