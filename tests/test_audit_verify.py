"""Audit verification: the official test vector (pangea-api.md 6.9), every single-byte tamper, keys."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr, ValidationError

from pangea_mcp import audit_verify as av
from tests.conftest import make_settings
from tests.fake_audit import Tree
from tests.spec import SPEC_DIR

ARTIFACT: dict[str, Any] = json.loads((SPEC_DIR / "log_artifact.json").read_text())
ROOT_111 = "44796fcb138da1cf756c17b24a74ab82e1b3b9c0d8e6eadbbdb5f067e3c9bc27"
RAW_KEY = "lvOyDMpK2DQ16NI8G41yINl01wMHzINBahtDPoh4+mE="
EVENT_BYTES = (
    b'{"actor":"node-sdk","message":"JSON-message",'
    b'"new":"{\\"customtag3\\":\\"mycustommsg3\\",\\"ct4\\":\\"cm4\\"}",'
    b'"old":"{\\"customtag5\\":\\"mycustommsg5\\",\\"ct6\\":\\"cm6\\"}","status":"signed"}'
)


def artifact() -> dict[str, Any]:
    return copy.deepcopy(ARTIFACT)


def roots_of(record: dict[str, Any], old_root: str = ROOT_111) -> dict[int, av.Root]:
    root = record["root"]
    new = av.Root(root["root_hash"], root["size"], tuple(root["consistency_proof"]))
    return {112: new, 111: av.Root(old_root, 111)}


def check(record: dict[str, Any], roots: dict[int, av.Root] | None = None) -> av.Checks:
    root = record["root"]
    return av.check_record(
        record,
        root=av.Root(root["root_hash"], root["size"]),
        unpublished_root=None,
        roots=roots if roots is not None else roots_of(record),
    )


def flips(text: str) -> Iterator[tuple[int, str]]:
    """Every single-character change of `text`: each position replaced by a different character."""
    for i, ch in enumerate(text):
        other = "0" if ch != "0" else "1"
        if ch in "lr":
            other = "r" if ch == "l" else "l"
        yield i, text[:i] + other + text[i + 1 :]


# -- the official test vector -----------------------------------------------------------------


def test_vector_envelope_hash() -> None:
    assert av.envelope_hash(ARTIFACT["envelope"]) == ARTIFACT["hash"]


def test_vector_signature_over_the_canonical_event_bytes() -> None:
    envelope = ARTIFACT["envelope"]
    assert av.signed_bytes(envelope["event"]) == EVENT_BYTES
    assert av.verify_signature(envelope["event"], envelope["signature"], envelope["public_key"])
    # The legacy raw-key path (base64, last 32 bytes) and the bare PEM both verify too.
    assert av.verify_signature(envelope["event"], envelope["signature"], RAW_KEY)
    pem = json.loads(envelope["public_key"])["key"]
    assert av.verify_signature(envelope["event"], envelope["signature"], pem)
    # Over the hash instead of the bytes it fails (the spec's prose is wrong, pangea-api.md 6.7).
    hashed = {"message": ARTIFACT["hash"]}
    assert not av.verify_signature(hashed, envelope["signature"], envelope["public_key"])


def test_vector_membership_in_the_published_root() -> None:
    assert av.verify_membership(ARTIFACT["hash"], ARTIFACT["root"]["root_hash"], ARTIFACT["membership_proof"])
    assert len(av.parse_membership_proof(ARTIFACT["membership_proof"])) == 8


def test_vector_consistency_items_fold_to_the_size_111_root() -> None:
    proof = ARTIFACT["root"]["consistency_proof"]
    assert av.consistency_old_root(proof) == ROOT_111
    assert av.verify_consistency(ROOT_111, ARTIFACT["root"]["root_hash"], proof)


def test_vector_record_every_check_verified() -> None:
    checks = check(artifact())
    assert (checks.hash, checks.membership, checks.consistency, checks.signature) == (
        "verified",
        "verified",
        "verified",
        "verified",
    )
    assert checks.outcome == "verified" and checks.notes == ()


def test_vector_key_order_inside_strings_is_not_fixed() -> None:
    # new/old hold non-canonical JSON text; re-serialising it (as the Node SDK does) breaks the hash.
    record = artifact()
    record["envelope"]["event"]["new"] = av.canonical_json(
        json.loads(record["envelope"]["event"]["new"])
    ).decode()
    assert check(record).hash == "failed"


# -- every single-byte tamper fails -----------------------------------------------------------


@pytest.mark.parametrize("name", ["message", "actor", "status", "new", "old"])
def test_any_changed_event_byte_fails_hash_membership_and_signature(name: str) -> None:
    for _, changed in flips(ARTIFACT["envelope"]["event"][name]):
        record = artifact()
        record["envelope"]["event"][name] = changed
        checks = check(record)
        assert (checks.hash, checks.membership, checks.signature) == ("failed", "failed", "failed"), changed
        assert checks.outcome == "failed"


def test_renamed_or_added_event_field_fails() -> None:
    record = artifact()
    event = record["envelope"]["event"]
    event["actoR"] = event.pop("actor")
    assert check(record).outcome == "failed"
    record = artifact()
    record["envelope"]["event"]["target"] = "x"
    assert check(record).signature == "failed"


def test_any_changed_received_at_byte_fails() -> None:
    for _, changed in flips(ARTIFACT["envelope"]["received_at"]):
        record = artifact()
        record["envelope"]["received_at"] = changed
        checks = check(record)
        assert (checks.hash, checks.membership) == ("failed", "failed"), changed


def test_any_changed_signature_byte_fails() -> None:
    for _, changed in flips(ARTIFACT["envelope"]["signature"]):
        record = artifact()
        record["envelope"]["signature"] = changed
        checks = check(record)
        assert checks.signature == "failed", changed
        assert checks.hash == "failed", changed


def test_a_forged_event_with_a_matching_hash_is_caught_by_the_signature() -> None:
    record = artifact()
    record["envelope"]["event"]["message"] = "forged"
    record["hash"] = av.envelope_hash(record["envelope"])
    checks = check(record)
    assert checks.hash == "verified" and checks.signature == "failed" and checks.membership == "failed"


def test_any_changed_membership_proof_byte_fails() -> None:
    for i, changed in flips(ARTIFACT["membership_proof"]):
        record = artifact()
        record["membership_proof"] = changed
        assert check(record).membership == "failed", i
        assert not av.verify_membership(ARTIFACT["hash"], ARTIFACT["root"]["root_hash"], changed), i


def test_any_changed_record_hash_byte_fails() -> None:
    for i, changed in flips(ARTIFACT["hash"]):
        record = artifact()
        record["hash"] = changed
        assert check(record).hash == "failed", i
        assert not av.verify_membership(changed, ARTIFACT["root"]["root_hash"], ARTIFACT["membership_proof"])


def test_any_changed_root_byte_fails() -> None:
    for i, changed in flips(ARTIFACT["root"]["root_hash"]):
        record = artifact()
        record["root"]["root_hash"] = changed
        checks = check(record)
        assert checks.membership == "failed", i
        # The consistency proof no longer leads to the new root either.
        assert checks.consistency == "failed", i


def test_search_root_differing_from_pangeas_root_of_that_size_fails() -> None:
    record = artifact()
    roots = roots_of(record)
    roots[112] = av.Root("00" * 32, 112, roots[112].consistency_proof)
    checks = check(record, roots)
    assert checks.membership == "failed"
    assert any("differs" in note for note in checks.notes)


def test_any_changed_previous_root_byte_fails_consistency() -> None:
    for i, changed in flips(ROOT_111):
        assert check(artifact(), roots_of(ARTIFACT, changed)).consistency == "failed", i


def test_any_changed_consistency_proof_byte_fails() -> None:
    proof = ARTIFACT["root"]["consistency_proof"]
    for n, item in enumerate(proof):
        for i, changed in flips(item):
            tampered = [*proof[:n], changed, *proof[n + 1 :]]
            assert not av.verify_consistency(ROOT_111, ARTIFACT["root"]["root_hash"], tampered), (n, i)


def test_consistency_proof_with_an_item_dropped_or_empty_fails() -> None:
    proof = ARTIFACT["root"]["consistency_proof"]
    new = ARTIFACT["root"]["root_hash"]
    assert not av.verify_consistency(ROOT_111, new, proof[:-1])
    assert not av.verify_consistency(ROOT_111, new, proof[1:])
    assert not av.verify_consistency(ROOT_111, new, [])
    assert not av.verify_consistency(ROOT_111, new, [*proof, proof[0]])


# -- labels when something is missing ----------------------------------------------------------


def test_missing_pieces_are_labelled_not_available_with_a_reason() -> None:
    record = artifact()
    del record["membership_proof"]
    checks = check(record, roots={})
    assert checks.membership == "not_available" and checks.consistency == "not_available"
    assert checks.outcome == "incomplete"
    assert any("no membership proof" in n for n in checks.notes)
    assert any("size 111 is not available" in n for n in checks.notes)


def test_unpublished_record_is_checked_against_the_unpublished_root() -> None:
    record = artifact()
    record["published"] = False
    unpublished = av.Root(record["root"]["root_hash"], 112)
    checks = av.check_record(record, root=None, unpublished_root=unpublished, roots={})
    assert (checks.membership, checks.consistency) == ("verified", "not_available")
    # Proven only against a root from the same answer: a forged answer could carry a forged root.
    assert checks.outcome == "incomplete"
    assert any("not published" in n for n in checks.notes)


def test_unsigned_and_half_signed_envelopes() -> None:
    record = artifact()
    del record["envelope"]["signature"], record["envelope"]["public_key"]
    assert check(record).signature == "unsigned"
    record = artifact()
    del record["envelope"]["public_key"]
    assert check(record).signature == "failed"


@pytest.mark.parametrize(
    "proof",
    [
        "x:" + "0" * 64,
        "l:" + "A" * 64,
        "l:" + "a" * 63,
        "l " + "a" * 64,
        "l:" + "a" * 64 + ",",
        "l:" + " a" * 32,
        "m:" + "a" * 64,
    ],
)
def test_malformed_proofs_fail_without_raising(proof: str) -> None:
    assert not av.verify_membership(ARTIFACT["hash"], ARTIFACT["root"]["root_hash"], proof)


def test_empty_proof_means_the_hash_is_the_root() -> None:
    assert av.verify_membership(ARTIFACT["hash"], ARTIFACT["hash"], "")
    assert not av.verify_membership(ARTIFACT["hash"], ROOT_111, "")


def test_uppercase_hashes_are_refused() -> None:
    assert not av.verify_membership(
        ARTIFACT["hash"].upper(), ARTIFACT["root"]["root_hash"], ARTIFACT["membership_proof"]
    )


# -- canonical JSON ---------------------------------------------------------------------------


def test_canonical_json_rules() -> None:
    value = {"b": 'é/\n\t\x01"\\', "a": {"z": 1, "y": [True, None, 1.5]}}
    assert (
        av.canonical_json(value) == '{"a":{"y":[true,null,1.5],"z":1},"b":"é/\\n\\t\\u0001\\"\\\\"}'.encode()
    )
    with pytest.raises(ValueError, match="JSON compliant"):
        av.canonical_json({"x": float("nan")})


def test_top_level_nulls_are_dropped_before_hashing() -> None:
    envelope = dict(ARTIFACT["envelope"], err=None)
    assert av.envelope_hash(envelope) == ARTIFACT["hash"]


# -- the fake's trees agree with the verifier (two independent implementations) -----------------


def test_every_membership_and_consistency_proof_of_trees_up_to_40_leaves() -> None:
    leaves = [bytes([i]) * 32 for i in range(40)]
    tree = Tree(leaves)
    for size in range(1, 41):
        root = tree.root(0, size).hex()
        for i in range(size):
            proof = ",".join(tree.path(0, size, i, i + 1))
            assert av.verify_membership(leaves[i].hex(), root, proof), (size, i)
        for old in range(1, size):
            proof_items = tree.consistency(old, size)
            assert av.verify_consistency(tree.root(0, old).hex(), root, proof_items), (old, size)
            assert not av.verify_consistency(tree.root(0, old).hex(), tree.root(0, old).hex(), proof_items)


# -- keys and signing -------------------------------------------------------------------------


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_sign_and_verify_round_trip_in_the_format_pangea_defines() -> None:
    key = av.load_private_key(_pem(Ed25519PrivateKey.generate()))
    event = {"message": "hi", "actor": "ünïcode", "timestamp": None}
    signature = av.sign_event(event, key)
    public_key = av.public_key_field(key)
    assert len(public_key) <= 256 and len(signature) <= 256
    assert json.loads(public_key)["algorithm"] == "ED25519"
    assert json.loads(public_key)["key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert av.verify_signature({"message": "hi", "actor": "ünïcode"}, signature, public_key)
    assert not av.verify_signature({"message": "hi!", "actor": "ünïcode"}, signature, public_key)


def test_openssh_and_raw_public_keys() -> None:
    key = Ed25519PrivateKey.generate()
    event = {"message": "x"}
    signature = base64.b64encode(key.sign(av.signed_bytes(event))).decode()
    ssh = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert av.verify_signature(event, signature, ssh.decode())
    assert av.verify_signature(event, signature, base64.b64encode(raw).decode())
    assert not av.verify_signature(event, signature, RAW_KEY)
    for bad in ("", "not a key", '{"algorithm":"RSA","key":"x"}', "{}", "-----BEGIN PUBLIC KEY-----\nxx\n"):
        assert not av.verify_signature(event, signature, bad)


def test_private_key_with_escaped_newlines_is_accepted() -> None:
    pem = _pem(Ed25519PrivateKey.generate())
    assert av.load_private_key(pem.replace("\n", "\\n"))


def test_bad_signing_key_setting_stops_startup_without_echoing_it() -> None:
    secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXZhbHVlLTEyMzQ=\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValidationError) as caught:
        make_settings(audit_signing_key=SecretStr(secret))
    assert "audit_signing_key" in str(caught.value)
    assert "c2VjcmV0" not in str(caught.value)
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

    ec = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValidationError, match="not an Ed25519 key"):
        make_settings(audit_signing_key=SecretStr(ec.decode()))
    good = make_settings(audit_signing_key=SecretStr(_pem(Ed25519PrivateKey.generate())))
    assert good.audit_signing_key is not None


# -- /v1/log results --------------------------------------------------------------------------


def _log_result(tree: Tree, size: int, index: int, envelope: dict[str, Any]) -> dict[str, Any]:
    return {
        "hash": av.envelope_hash(envelope),
        "envelope": envelope,
        "unpublished_root": tree.root(0, size).hex(),
        "membership_proof": ",".join(tree.path(0, size, index, index + 1)),
    }


def test_log_result_checks() -> None:
    envelopes = [
        {"event": {"message": f"m{i}"}, "received_at": "2025-01-01T00:00:00.000000Z"} for i in range(5)
    ]
    tree = Tree([bytes.fromhex(av.envelope_hash(e)) for e in envelopes])
    first = _log_result(tree, 3, 2, envelopes[2])
    checks = av.check_log_result(first, prev_root=None)
    assert (checks.hash, checks.membership, checks.consistency) == ("verified", "verified", "not_available")
    assert checks.outcome == "incomplete"  # the first write has no earlier root to anchor it

    second = _log_result(tree, 5, 4, envelopes[4])
    second["consistency_proof"] = tree.consistency(3, 5)
    assert av.check_log_result(second, prev_root=first["unpublished_root"]).consistency == "verified"
    assert av.check_log_result(second, prev_root=tree.root(0, 2).hex()).consistency == "failed"
    del second["consistency_proof"]
    checks = av.check_log_result(second, prev_root=first["unpublished_root"])
    assert checks.consistency == "not_available" and checks.outcome == "incomplete"

    tampered = dict(first, envelope={**envelopes[2], "event": {"message": "m9"}})
    checks = av.check_log_result(tampered, prev_root=None)
    assert (checks.hash, checks.membership, checks.outcome) == ("failed", "failed", "failed")
