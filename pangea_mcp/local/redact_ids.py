"""Local redaction: national identifiers and bank codes, each checked with its checksum (python-stdnum)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from stdnum.au import abn, acn, tfn
from stdnum.br import cpf
from stdnum.ca import sin
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.us import itin, rtn

from pangea_mcp.local.redact_hits import Hit, keywords, near

# A value stands alone: not inside a longer word, number or dashed identifier.
_L = r"(?<![\w-])"
_R = r"(?![\w-]|[.,]\d)"


@dataclass(frozen=True)
class _IdRule:
    field_type: str
    pattern: re.Pattern[str]
    is_valid: Callable[[str], bool]
    #: None: the shape and checksum suffice. Otherwise a context word must stand near the value,
    #: because the checksum is weak (one number in ten or eleven passes) or the shape is common.
    context: re.Pattern[str] | None
    score: float


def _rule(
    field_type: str,
    pattern: str,
    is_valid: Callable[[str], bool],
    context: re.Pattern[str] | None,
    score: float,
) -> _IdRule:
    return _IdRule(field_type, re.compile(_L + pattern + _R), is_valid, context, score)


def _ssn(value: str) -> bool:
    # stdnum's structural rules (area not 000, 666 or 9xx; group and serial not zero) without its list of
    # published specimen numbers: a specimen written into a document is still redacted.
    digits = re.sub(r"\D", "", value)
    return (
        len(digits) == 9
        and digits[:3] not in ("000", "666")
        and digits[0] != "9"
        and digits[3:5] != "00"
        and digits[5:] != "0000"
    )


def _spanish_id(value: str) -> bool:
    return bool(dni.is_valid(value) or nie.is_valid(value))


_SSN_WORDS = keywords("ssn", "ss#", "social security", "sozialversicherung", "seguro social")
_RULES: tuple[_IdRule, ...] = (
    # Dashed 3-2-4 is the SSN's own shape; other spellings need "SSN" nearby.
    _rule("US_SSN", r"\d{3}-\d{2}-\d{4}", _ssn, None, 0.85),
    _rule("US_SSN", r"\d{3} \d{2} \d{4}|\d{9}", _ssn, _SSN_WORDS, 0.85),
    _rule("US_ITIN", r"9\d{2}-\d{2}-\d{4}", itin.is_valid, None, 0.85),
    _rule("US_ITIN", r"9\d{2} \d{2} \d{4}|9\d{8}", itin.is_valid, keywords("itin", "taxpayer"), 0.85),
    _rule(
        "ABA_ROUTING_NUMBER",
        r"\d{9}",
        rtn.is_valid,
        keywords("routing", "aba", "rtn", "transit number"),
        0.7,
    ),
    _rule("UK_NHS", r"\d{3}[ -]?\d{3}[ -]?\d{4}", nhs.is_valid, keywords("nhs"), 0.85),
    # Spanish DNI/NIE (personal NIF): the check letter is a strong checksum.
    _rule("NIF", r"\d{8}-?[A-Z]|[XYZ]-?\d{7}-?[A-Z]", _spanish_id, None, 0.9),
    _rule("AU_TFN", r"\d{3} \d{3} \d{2,3}|\d{8,9}", tfn.is_valid, keywords("tfn", "tax file"), 0.8),
    _rule("AU_ABN", r"\d{2} \d{3} \d{3} \d{3}|\d{11}", abn.is_valid, keywords("abn", "business number"), 0.8),
    _rule("AU_ACN", r"\d{3} \d{3} \d{3}|\d{9}", acn.is_valid, keywords("acn", "company number"), 0.8),
    _rule(
        "IT_FISCAL_CODE",
        r"[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z]",
        codicefiscale.is_valid,
        None,
        0.95,
    ),
    _rule(
        "IN_AADHAAR",
        r"[2-9]\d{3} \d{4} \d{4}|[2-9]\d{11}",
        aadhaar.is_valid,
        keywords("aadhaar", "aadhar", "uidai", "आधार"),
        0.85,
    ),
    _rule("BR_CPF", r"\d{3}\.\d{3}\.\d{3}-\d{2}", cpf.is_valid, None, 0.9),
    _rule("BR_CPF", r"\d{11}", cpf.is_valid, keywords("cpf"), 0.85),
    _rule(
        "FR_NIR",
        r"[12] \d{2} \d{2} (?:\d{2}|2A|2B) \d{3} \d{3} \d{2}",
        nir.is_valid,
        None,
        0.9,
    ),
    _rule(
        "FR_NIR",
        r"[12]\d{4}(?:\d{2}|2A|2B)\d{8}",
        nir.is_valid,
        keywords("nir", "sécurité sociale", "securite sociale", "insee"),
        0.85,
    ),
    _rule(
        "CA_SIN",
        r"\d{3}[ -]\d{3}[ -]\d{3}|\d{9}",
        sin.is_valid,
        keywords("sin", "social insurance", "nas", "assurance sociale"),
        0.8,
    ),
    _rule("NL_BSN", r"\d{4}\.\d{2}\.\d{3}|\d{9}", bsn.is_valid, keywords("bsn", "burgerservicenummer"), 0.8),
    _rule(
        "DE_TAX_ID",
        r"\d{2} \d{3} \d{3} \d{3}|\d{11}",
        idnr.is_valid,
        keywords("steuer-id", "steuerid", "steueridentifikationsnummer", "idnr", "tax id"),
        0.8,
    ),
)

#: The entity types this module recognises.
ID_TYPES: tuple[str, ...] = tuple(dict.fromkeys(rule.field_type for rule in _RULES))


def _placeholder(value: str) -> bool:
    """One digit repeated (111.111.111-11, 000 000 000): several checksums pass such numbers (CPF, NHS, TFN,
    ACN, routing), but no authority issues them (Brazil's Receita Federal rejects them explicitly). They are
    test and filler values."""
    digits = re.sub(r"\D", "", value)
    return len(set(digits)) == 1


def national_ids(text: str) -> Iterator[Hit]:
    for rule in _RULES:
        for match in rule.pattern.finditer(text):
            if rule.context is not None and not near(text, match.start(), match.end(), rule.context):
                continue
            if not _placeholder(match.group()) and rule.is_valid(match.group()):
                yield Hit(rule.field_type, match.start(), match.end(), rule.score)
