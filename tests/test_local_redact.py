"""Local redaction (pangea_mcp.local.redaction): accuracy on the labelled set, each recogniser, and the
redact / redact_structured tools answered by the local backend through a real MCP client."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from pangea_mcp.local.redact_jsonpath import JsonPathError, select
from pangea_mcp.local.redaction import (
    ENTITY_TYPES,
    UnknownNames,
    entity_types,
    find,
    redact_data,
    redact_text,
)
from pangea_mcp.server import build_server
from tests import redaction_scoring
from tests.conftest import make_settings

LABELLED = Path(__file__).parent / "data" / "redaction_labelled.jsonl"


def _found(text: str, types: list[str] | None = None) -> list[tuple[str, str]]:
    return [(h.field_type, text[h.start : h.end]) for h in find(text, types or ENTITY_TYPES)]


# -- accuracy ------------------------------------------------------------------------------------------


def test_precision_and_recall_on_the_labelled_set() -> None:
    labelled = redaction_scoring.load(LABELLED)
    assert len(labelled.positives) >= 200 and len(labelled.negatives) >= 200

    # Entity level, strict: a hit counts only with the labelled type and exactly the labelled span.
    score = redaction_scoring.score(labelled.rows)
    print(f"\nlocal redaction: {score.summary()}")
    assert score.precision >= 0.95
    assert score.recall >= 0.90


# -- recognisers --------------------------------------------------------------------------------------


def test_email_addresses_but_not_lookalikes() -> None:
    assert _found("write to Ana.Lopez+news@correo.example.es.") == [
        ("EMAIL_ADDRESS", "Ana.Lopez+news@correo.example.es")
    ]
    assert _found("use icon@2x.png, npm i lodash@4.17.21, @alice, user@localhost") == []


def test_phone_numbers_international_national_and_not_identifiers() -> None:
    assert _found("call +44 20 7946 0958 or (415) 555-2671") == [
        ("PHONE_NUMBER", "+44 20 7946 0958"),
        ("PHONE_NUMBER", "(415) 555-2671"),
    ]
    # A national German number counts next to a phone word, not on its own.
    assert _found("Telefon: 030 23456789") == [("PHONE_NUMBER", "030 23456789")]
    assert _found("Kennziffer 030 23456789") == []
    # Valid digit strings that are identifiers, builds or bare runs.
    assert _found("Invoice INV-2023-004512, build 2019.5.6.1841, order 4155552671") == []


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("Tél. : 01 45 67 89 12", "01 45 67 89 12"),
        ("TÉL 04 78 12 34 56", "04 78 12 34 56"),
        ("Natel 078 765 43 21", "078 765 43 21"),
        ("GSM: 0475 98 76 54", "0475 98 76 54"),
        ("Telemóvel 934 567 890", "934 567 890"),
        ("Telefoon 010-1234567", "010-1234567"),
        ("Fone (21) 2345-6789", "(21) 2345-6789"),
        ("Ph. (03) 9123 4567", "(03) 9123 4567"),
        ("Mob: 0412 987 654", "0412 987 654"),
        ("Handy 0151 23456789", "0151 23456789"),
        ("Cel.: (55) 1234-5678", "(55) 1234-5678"),
        ("Tlf. 32 12 34 56", "32 12 34 56"),
        ("Puh. 040 123 4567", "040 123 4567"),
        ("Tel.nr 08-123 456 78", "08-123 456 78"),
        ("電話 03-1234-5678", "03-1234-5678"),
        ("Телефон: 8 (495) 123-45-67", "8 (495) 123-45-67"),
        ("Ring me on 087 123 4567", "087 123 4567"),
        ("Telefon 22 123 45 67", "22 123 45 67"),
        ("Give me a bell on 021 123 4567", "021 123 4567"),
    ],
)
def test_phone_words_of_many_languages_admit_national_formats(text: str, number: str) -> None:
    assert _found(text) == [("PHONE_NUMBER", number)]


def test_phone_words_do_not_turn_dates_decimals_or_identifiers_into_numbers() -> None:
    # Norway and Denmark accept any eight digits, Poland many nine-digit strings.
    for text in (
        "Tel: 23.03.2024",
        "call on 2024-06-12",
        "Tel: lat 40.712776",
        "call about reservation #55219870",
        "Tel: ZIP 33274-8778",
        "phone: 09663 rows",
        "Contact us about lot 23-4333051",
    ):
        assert _found(text) == [], text


def test_phone_country_code_kept_before_a_bracketed_note() -> None:
    # "(24/7)" sent libphonenumber's matcher to an inner match that starts at "(646)".
    assert _found("US support line +1 (212) 736-5000 (24/7)") == [("PHONE_NUMBER", "+1 (212) 736-5000")]
    assert _found("Hotline +44 (20) 7946 0958 (Mo/Fr)") == [("PHONE_NUMBER", "+44 (20) 7946 0958")]


def test_phone_extensions_are_redacted_with_the_number() -> None:
    # libphonenumber includes the extension in the span; nothing of it may be left behind.
    for text, expected in (
        ("Our NYC office: (212) 555-0199, ext. 14.", "Our NYC office: <PHONE_NUMBER>."),
        ("desk (212) 736-5000 x204", "desk <PHONE_NUMBER>"),
        ("Call +44 20 7946 0958 ext. 123 now", "Call <PHONE_NUMBER> now"),
    ):
        assert redact_text(text).redacted == expected


def test_cards_need_luhn_and_an_issuer_prefix() -> None:
    assert _found("card 4111 1111 1111 1111 and 3782-822463-10005") == [
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("CREDIT_CARD", "3782-822463-10005"),
    ]
    assert _found("card 4111 1111 1111 1112") == []  # Luhn fails
    assert _found("ref 1234 5678 9012 3452") == []  # Luhn holds, no network issues 1...


def test_iban_checksum_and_trailing_words() -> None:
    assert _found("IBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX") == [
        ("IBAN_CODE", "DE89 3704 0044 0532 0130 00")
    ]
    assert _found("IBAN DE88 3704 0044 0532 0130 00") == []


def test_ip_addresses_v4_v6_but_not_versions_masks_or_macs() -> None:
    assert _found("from 10.0.0.12:8080 and [2001:db8::8a2e:370:7334], ::ffff:192.0.2.1") == [
        ("IP_ADDRESS", "10.0.0.12"),
        ("IP_ADDRESS", "2001:db8::8a2e:370:7334"),
        ("IP_ADDRESS", "::ffff:192.0.2.1"),
    ]
    assert (
        _found("version 1.2.3.4, v1.0.0.1, mask 255.255.255.0, mac 00:1a:2b:3c:4d:5e, 12:30:45, std::map")
        == []
    )


def test_ip_version_of_a_user_agent_product_is_not_an_address() -> None:
    ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
    assert _found(ua) == []
    assert _found(f"User-Agent: MyCrawler/2.0.1.3 ({ua})") == []
    assert _found("curl/8.4.0.1 from 10.1.2.3") == [("IP_ADDRESS", "10.1.2.3")]
    # A path segment, a URL host or an unknown token before the slash leaves the address an address.
    for text, ip in (
        ("GET /hosts/10.0.0.7 HTTP/1.1", "10.0.0.7"),
        ("http://10.0.0.1/admin", "10.0.0.1"),
        ("host/192.168.1.20", "192.168.1.20"),
        ("route 10.0.0.0/8 via 10.0.0.1", "10.0.0.0"),
    ):
        assert ("IP_ADDRESS", ip) in _found(text), text


def test_national_ids_with_checksums_and_context() -> None:
    text = "SSN 457-55-5462, ITIN 912-70-1234, DNI 12345678Z, CF RSSMRA85T10A562S, CPF 390.533.447-05"
    assert _found(text) == [
        ("US_SSN", "457-55-5462"),
        ("US_ITIN", "912-70-1234"),
        ("NIF", "12345678Z"),
        ("IT_FISCAL_CODE", "RSSMRA85T10A562S"),
        ("BR_CPF", "390.533.447-05"),
    ]
    assert _found("SSN 666-12-3456 or 123-00-4567") == []  # impossible area / group
    assert _found("DNI 12345678A") == []  # wrong check letter
    # A weak checksum (NHS: mod 11) needs its label nearby.
    assert _found("NHS number 943 476 5919") == [("UK_NHS", "943 476 5919")]
    assert _found("Number 943 476 5919") != [("UK_NHS", "943 476 5919")]


def test_ids_of_one_repeated_digit_are_placeholders() -> None:
    # Each passes its checksum (stdnum accepts them) but is never issued.
    for text in (
        "CPF 111.111.111-11",
        "CPF 99999999999",
        "NHS number 444 444 4444",
        "TFN 000 000 000",
        "ACN 000 000 000",
        "routing 000000000",
        "SSN 222-22-2222",
        "ITIN 999-99-9999",
    ):
        assert _found(text) == [], text
    assert _found("CPF 390.533.447-05") == [("BR_CPF", "390.533.447-05")]


def test_ssn_structure_rules_agree_with_stdnum() -> None:
    from stdnum.us import ssn

    for value in ("000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000"):
        assert not ssn.is_valid(value)
        assert ("US_SSN", value) not in _found(f"SSN {value}")
    assert ssn.is_valid("536-90-4399") and _found("SSN 536-90-4399") == [("US_SSN", "536-90-4399")]


def test_user_at_host_in_a_url_is_not_an_email_address() -> None:
    assert _found("postgres://report_ro@db-analytics.internal:5432/metrics") == []
    assert _found("git clone ssh://git@code.example.com/team/repo.git") == []
    # A password in the authority is still a credential; addresses elsewhere are still addresses.
    assert _found("amqp://guest:S3cr3tPa55@rabbit.example.com:5672") == [("BASIC_AUTH", "S3cr3tPa55")]
    assert _found("mailto:jane@example.org") == [("EMAIL_ADDRESS", "jane@example.org")]
    assert _found("see https://example.com/u/jane@example.org") == [("EMAIL_ADDRESS", "jane@example.org")]
    assert _found("https://example.com, write to jane@example.org") == [("EMAIL_ADDRESS", "jane@example.org")]


def test_github_fine_grained_token() -> None:
    token = "github_pat_" + "A1b2C3d4E5f6G7h8I9j0K1" + "_" + "Zz9" * 19 + "xY"
    assert _found(f"GITHUB_TOKEN={token}") == [("GITHUB_ACCESS_TOKEN", token)]
    assert _found(f"x{token}") == []  # inside a longer token
    assert _found("github_pat_tooShort_abc") == []


def test_unquoted_aws_secret_access_key_is_typed() -> None:
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKQ"
    for text in (
        f"export AWS_SECRET_ACCESS_KEY={key}",
        f"aws_secret_access_key = {key}",
        f"AWS_SECRET_ACCESS_KEY: {key}",
        f'AWS_SECRET_ACCESS_KEY="{key}"',
    ):
        assert _found(text) == [("AMAZON_AWS_SECRET_ACCESS_KEY", key)], text


def test_credentials_whole_tokens_and_blocks() -> None:
    jwt = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    )
    text = (
        f"AKIAIOSFODNN7EXAMPLE {jwt} rk_live_{'a1' * 12} pts_{'k' * 32} "
        "postgres://app:p$ss!Word9@db.example.com/x"
    )
    assert _found(text) == [
        ("AMAZON_AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        ("JWT_TOKEN", jwt),
        ("STRIPE_RESTRICTED_API_KEY", f"rk_live_{'a1' * 12}"),
        ("PANGEA_TOKEN", f"pts_{'k' * 32}"),
        ("BASIC_AUTH", "p$ss!Word9"),  # the password, not an e-mail "p$ss!Word9@db.example.com"
    ]
    block = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBk\n-----END EC PRIVATE KEY-----"
    assert _found(f"key:\n{block}\nthanks") == [("SSH_EC_PRIVATE_KEY", block)]
    # Without its END line, everything after BEGIN is key material.
    truncated = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA"
    assert _found(f"pasted: {truncated}") == [("RSA_PRIVATE_KEY", truncated)]


def test_keyword_secrets_only_for_credential_values() -> None:
    assert _found('db_password = "S3cr3t!Passw0rd"') == [("SECRET", "S3cr3t!Passw0rd")]
    for text in (
        "password: ********",
        'password = os.environ["DB_PASSWORD"]',
        'secret_name = "prod-db-credentials"',
        "api_key: ${API_KEY}",
        "Reset your password: see the help page",
    ):
        assert _found(text) == [], text


def test_overlaps_are_resolved_before_types_are_filtered() -> None:
    # A card number is not reported as a phone number when only phones are wanted.
    assert _found("pay with 4111111111111111 today", ["PHONE_NUMBER"]) == []
    assert _found("pay with 4111111111111111, call (415) 555-2671", ["PHONE_NUMBER"]) == [
        ("PHONE_NUMBER", "(415) 555-2671")
    ]


def test_redact_text_replaces_with_entity_type() -> None:
    result = redact_text("mail a@b.example.org, SSN 123-45-6789", {"EMAIL_ADDRESS"})
    assert result.redacted == "mail <EMAIL_ADDRESS>, SSN 123-45-6789"
    assert result.summary_counts == {"EMAIL_ADDRESS": 1}


def test_rules_and_rulesets_select_types_and_reject_unknown_names() -> None:
    assert entity_types(None, None) == frozenset(ENTITY_TYPES)
    assert entity_types(["US_SSN"], ["SECRETS"]) >= {"US_SSN", "JWT_TOKEN", "PANGEA_TOKEN"}
    assert "EMAIL_ADDRESS" not in entity_types(["US_SSN"], ["SECRETS"])
    with pytest.raises(UnknownNames) as caught:
        entity_types(["US_SSN", "PERSON"], ["PII", "FINANCIAL"])
    assert set(caught.value.problems) == {("rules", 1), ("rulesets", 1)}
    assert "EMAIL_ADDRESS" in caught.value.problems[("rules", 1)]


def test_jsonpath_subset() -> None:
    data = {"a": {"b": [{"c": 1}, {"c": 2}, {"d": 3}]}, "c": 0, "x y": 4}
    assert select(data, "$.a.b[*].c") == {("a", "b", 0, "c"), ("a", "b", 1, "c")}
    assert select(data, "$..c") == {("c",), ("a", "b", 0, "c"), ("a", "b", 1, "c")}
    assert select(data, "$['x y']") == {("x y",)}
    assert select(data, "$.a.b[-1]") == {("a", "b", 2)}
    assert select(data, "$.a.b[0:2]") == {("a", "b", 0), ("a", "b", 1)}
    assert select(data, "$.a['b','nope'][1,0]") == {("a", "b", 0), ("a", "b", 1)}
    assert select(data, "$.missing.path") == set()
    for bad in ("$.a[?(@.c > 1)]", "$.a[", "$..", "a.b", "$.a[1:2:0]"):
        with pytest.raises(JsonPathError):
            select(data, bad)


def test_redact_data_walks_leaves_and_honours_paths() -> None:
    data = {"user": {"email": "a@b.example.org", "phone": 14155552671}, "note": "a@b.example.org", "ok": True}
    everything = redact_data(data, None)
    assert everything.redacted == {
        "user": {"email": "<EMAIL_ADDRESS>", "phone": 14155552671},  # a bare digit run is not a phone
        "note": "<EMAIL_ADDRESS>",
        "ok": True,
    }
    assert everything.keys == ["user.email", "note"]
    only_user = redact_data({"user": {"card": 4111111111111111}, "note": "a@b.example.org"}, ["$.user"])
    assert only_user.redacted == {"user": {"card": "<CREDIT_CARD>"}, "note": "a@b.example.org"}
    assert only_user.keys == ["user.card"]


# -- through MCP, local backend ------------------------------------------------------------------------

TEXT = "Mail jane@example.org or call +1 415-555-2671; SSN 457-55-5462."


def _local_server() -> Any:
    return build_server(make_settings(token=None, backend="local", services=("redact",)))


def _no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError("the local backend opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


async def test_local_tools_exist_without_unredact_and_make_no_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts = _no_network(monkeypatch)
    async with Client(_local_server()) as client:
        tools = {t.name: t for t in await client.list_tools()}
        text = await client.call_tool("redact", {"text": TEXT, "debug": True})
        data = await client.call_tool(
            "redact_structured", {"data": {"contact": {"mail": "jane@example.org"}}}
        )
    assert set(tools) == {"redact", "redact_structured"}  # no FPE locally, so nothing to unredact
    assert text.structured_content is not None and data.structured_content is not None
    jsonschema.validate(text.structured_content, tools["redact"].output_schema)
    jsonschema.validate(data.structured_content, tools["redact_structured"].output_schema)
    assert attempts == []


async def test_local_redact_returns_pangea_shape_without_matched_text() -> None:
    async with Client(_local_server()) as client:
        result = await client.call_tool("redact", {"text": TEXT, "debug": True})
    data = result.structured_content
    assert data == {
        "redacted_text": "Mail <EMAIL_ADDRESS> or call <PHONE_NUMBER>; SSN <US_SSN>.",
        "count": 3,
        "report": {
            "summary_counts": {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1, "US_SSN": 1},
            "recognizer_results": [
                {
                    "field_type": "EMAIL_ADDRESS",
                    "score": 1.0,
                    "start": 5,
                    "end": 21,
                    "redacted": True,
                    "data_key": None,
                },
                {
                    "field_type": "PHONE_NUMBER",
                    "score": 0.9,
                    "start": 30,
                    "end": 45,
                    "redacted": True,
                    "data_key": None,
                },
                {
                    "field_type": "US_SSN",
                    "score": 0.85,
                    "start": 51,
                    "end": 62,
                    "redacted": True,
                    "data_key": None,
                },
            ],
        },
        "fpe_context": None,
        "request_id": None,
    }
    everything = json.dumps(data) + json.dumps([c.model_dump() for c in result.content])
    for secret in ("jane@example.org", "415-555-2671", "457-55-5462"):
        assert secret not in everything


async def test_local_redact_options_rules_and_return_result() -> None:
    async with Client(_local_server()) as client:
        only_ssn = await client.call_tool("redact", {"text": TEXT, "rules": ["US_SSN"]})
        count_only = await client.call_tool("redact", {"text": TEXT, "return_result": False})
        secrets = await client.call_tool("redact", {"text": TEXT, "rulesets": ["SECRETS"]})
    assert only_ssn.structured_content is not None
    assert only_ssn.structured_content["redacted_text"] == TEXT.replace("457-55-5462", "<US_SSN>")
    assert count_only.structured_content is not None
    assert count_only.structured_content["count"] == 3
    assert count_only.structured_content["redacted_text"] is None
    assert secrets.structured_content is not None
    assert secrets.structured_content["count"] == 0


async def test_local_redact_unknown_rule_or_ruleset_is_an_argument_error() -> None:
    async with Client(_local_server()) as client:
        with pytest.raises(ToolError) as caught:
            await client.call_tool(
                "redact", {"text": TEXT, "rules": ["US_SSN", "PERSON"], "rulesets": ["HIPAA"]}
            )
    message = str(caught.value)
    assert "Invalid arguments for redact" in message
    assert "rules[1]: 'PERSON' has no local recogniser" in message and "EMAIL_ADDRESS" in message
    assert "rulesets[0]: 'HIPAA' is not a ruleset the local backend knows; use one of PII, SECRETS" in message


async def test_local_redact_structured_with_jsonp_and_data_keys() -> None:
    record = {
        "name": "Dennis",
        "contact": {"phone": "+1 415-555-2671", "email": "dennis@ingen.example.com"},
        "ids": [{"ssn": "457-55-5462"}],
    }
    async with Client(_local_server()) as client:
        result = await client.call_tool(
            "redact_structured", {"data": record, "jsonp": ["$.contact.phone", "$..ssn"], "debug": True}
        )
    data = result.structured_content
    assert data is not None
    assert data["redacted_data"] == {
        "name": "Dennis",
        "contact": {"phone": "<PHONE_NUMBER>", "email": "dennis@ingen.example.com"},  # not under jsonp
        "ids": [{"ssn": "<US_SSN>"}],
    }
    assert data["count"] == 2
    assert [(h["field_type"], h["data_key"], h["start"]) for h in data["report"]["recognizer_results"]] == [
        ("PHONE_NUMBER", "contact.phone", 0),
        ("US_SSN", "ids.0.ssn", 0),
    ]
    assert data["request_id"] is None and data["fpe_context"] is None


async def test_local_redact_structured_rejects_unsupported_jsonpath() -> None:
    async with Client(_local_server()) as client:
        with pytest.raises(ToolError, match=r"jsonp\[1\]: .*filter and script expressions are not supported"):
            await client.call_tool("redact_structured", {"data": {"a": 1}, "jsonp": ["$.a", "$[?(@.a)]"]})
