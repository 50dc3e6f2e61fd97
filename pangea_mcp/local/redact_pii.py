"""Local redaction: recognisers for e-mail addresses, phone numbers, payment cards, IBANs and IP addresses."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

import phonenumbers
from stdnum import iban, luhn

from pangea_mcp.local.redact_hits import Hit, keywords, near

# -- e-mail ------------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])"
    r"[\w%+-]+(?:\.[\w%+-]+)*"  # local part: no leading, trailing or doubled dot
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+"
    r"[^\W\d_]{2,24}"  # top-level domain: letters only
    r"(?![\w-]|\.[^\W_])"
)
# Retina asset names (icon@2x.png) have the shape of an address.
_ASSET = re.compile(r"@\d+(?:\.\d+)?x\.", re.IGNORECASE)
# "postgres://app_user@db.internal": user@host in a URL's authority is a user name and a host. (A password
# in "user:password@host" is a BASIC_AUTH credential, found by the secrets recogniser.)
_URL_AUTHORITY = re.compile(r"[A-Za-z][\w+.-]*://[^\s/?#@]*$")


def emails(text: str) -> Iterator[Hit]:
    for match in _EMAIL.finditer(text):
        if _ASSET.search(match.group()):
            continue
        line_start = max(text.rfind("\n", 0, match.start()) + 1, match.start() - 256)
        if _URL_AUTHORITY.search(text, line_start, match.start()):
            continue
        yield Hit("EMAIL_ADDRESS", match.start(), match.end(), 1.0)


# -- phone numbers -----------------------------------------------------------------------------------

_PHONE_WORDS = keywords(
    # English
    "phone*", "ph", "tel", "telephone*", "mobile*", "mob", "cell*", "call*", "fax", "whatsapp", "sms",
    "text me", "dial", "ring", "a bell", "hotline", "helpline", "contact", "reach me",
    # German, Swiss, Austrian
    "telefon*", "tel.nr", "handy*", "natel", "ruf*", "anruf*", "erreichbar", "mobil*",
    # French, Belgian
    "téléphone", "tél", "portable", "gsm", "appel*", "joindre", "numéro",
    # Spanish, Italian, Portuguese
    "teléfono", "telefono", "móvil", "movil", "llam*", "llám*", "cel", "celular", "cellulare", "chiam*",
    "telefone", "telemóvel", "telemovel", "fone", "ligue", "ligar",
    # Dutch, Nordic, Finnish, Polish
    "telefoon*", "bel", "bellen", "tlf", "puh", "puhelin*", "komórka",
    # Japanese, Chinese, Korean, Russian
    "電話", "携帯", "电话", "手机", "전화", "휴대폰", "телефон*", "тел", "моб*",
)  # fmt: skip
# National formats are ambiguous across countries; outside the default region a number written
# without its +country code counts only next to a phone word.
_DEFAULT_REGION = "US"
_CONTEXT_REGIONS = (
    *("GB", "IE", "DE", "AT", "CH", "FR", "BE", "NL", "ES", "PT", "IT"),
    *("SE", "NO", "DK", "FI", "PL"),
    *("AU", "NZ", "ZA", "IN", "JP", "KR", "CN", "RU", "BR", "MX"),
)
# Valid in its numbering plan and grouped the way that plan writes numbers: "2023-731860" (an order
# number) and dotted build numbers are valid digit strings but not grouped as phone numbers are.
_LENIENCY = phonenumbers.Leniency.STRICT_GROUPING
_VALID = phonenumbers.Leniency.VALID
# Identifiers often labelled so; digits right after these words are not read as a phone number.
_NOT_PHONE_WORDS = keywords(
    "id", "pin", "code", "passcode", "order", "invoice", "ticket", "ref", "ref.", "tracking", "account",
    "sku", "serial", "isbn", "bestellung", "rechnung", "commande", "pedido", "ordine", "lot", "batch",
    "case", "part", "po", "zip", "postcode", "plz", "dni", "nif", "nie", "reservation", "booking",
)  # fmt: skip


def _word(char: str) -> bool:
    # ASCII only: Japanese or Chinese text runs straight into a number ("電話番号は03-1234-5678です").
    return char.isascii() and char.isalnum()


def _glued(text: str, start: int, end: int) -> bool:
    """Part of a longer token (INV-2023-004512, ab12345678, a PIN typed with #): not a phone number."""
    before = text[max(0, start - 2) : start]
    after = text[end : end + 2]
    return bool(
        (before and (_word(before[-1]) or (before[-1] in "-_/#." and _word(before[:1]))))
        or (after and (_word(after[0]) or after[0] == "#" or (after[0] in "-_/" and _word(after[1:2]))))
    )


# Dates (23.03.2024, 2024-06-12), ZIP+4 codes and decimals (40.712776) are valid digit strings in plans
# where any eight digits make a number (Norway, Denmark), but they are not written as phone numbers.
_NOT_PHONE_SHAPE = re.compile(
    r"\d{1,2}([./-])\d{1,2}\1\d{2,4}|\d{4}([./-])\d{1,2}\2\d{1,2}|\d{5}-\d{4}|[+-]?[1-9]\d*[.,]\d+"
)


def _shape_ok(text: str, start: int, end: int, international: bool) -> bool:
    raw = text[start:end]
    if _NOT_PHONE_SHAPE.fullmatch(raw):
        return False
    # "Reservation #55219870": a number written after # is an identifier.
    if text[:start].rstrip().endswith("#"):
        return False
    # Short national numbers (five or six digits) are service or internal numbers, or just counts.
    return international or sum(c.isdigit() for c in raw) >= 7


def _matches(text: str) -> Iterator[phonenumbers.PhoneNumberMatch]:
    yield from phonenumbers.PhoneNumberMatcher(text, _DEFAULT_REGION, leniency=_LENIENCY)
    # With its +country code a number is unambiguous, however its digits are grouped (+31 6 2861 6875).
    for match in phonenumbers.PhoneNumberMatcher(text, _DEFAULT_REGION, leniency=_VALID):
        if match.raw_string.startswith("+"):
            yield match
    if _PHONE_WORDS.search(text):
        for region in _CONTEXT_REGIONS:
            yield from phonenumbers.PhoneNumberMatcher(text, region, leniency=_LENIENCY)


# A "+country code" standing right before a match the matcher cut short: "+1 (646) 772-3108 (24/7)" is
# matched from "(646)", because the bracketed "(24/7)" sends the matcher to its inner-match fallback.
_COUNTRY_CODE = re.compile(r"(?<![\w+])\+\d{1,3}[ .-]?$")


def _with_country_code(text: str, match: phonenumbers.PhoneNumberMatch) -> int:
    """Where the number starts: before its +country code when the matcher left that out."""
    prefix = _COUNTRY_CODE.search(text, max(0, match.start - 6), match.start)
    if prefix is None or match.raw_string.startswith("+"):
        return match.start
    try:
        number = phonenumbers.parse(text[prefix.start() : match.end], None)
    except phonenumbers.NumberParseException:
        return match.start
    same = number.national_number == match.number.national_number
    return prefix.start() if same and phonenumbers.is_valid_number(number) else match.start


def phones(text: str) -> Iterator[Hit]:
    seen: set[tuple[int, int]] = set()
    for match in _matches(text):
        start = _with_country_code(text, match)
        span = (start, match.end)
        if span in seen or _glued(text, start, match.end):
            continue
        label = text[max(0, start - 12) : start]
        if _NOT_PHONE_WORDS.search(label) and not _PHONE_WORDS.search(label):
            continue
        raw = text[start : match.end]
        international = raw.lstrip("(").startswith(("+", "00"))
        if not _shape_ok(text, start, match.end, international):
            continue
        context = near(text, start, match.end, _PHONE_WORDS)
        # Bare digit runs (4155552671) are as often order or account numbers: phone words required.
        if raw.isdigit() and not context:
            continue
        # National formats of other countries count only next to a phone word.
        if not international and not context and match.number.country_code != 1:
            continue
        seen.add(span)
        yield Hit("PHONE_NUMBER", start, match.end, 0.9 if international or context else 0.75)


# -- payment cards -----------------------------------------------------------------------------------

_CARD = re.compile(
    r"(?<![\w-])(?:"
    r"\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?"  # 16 digits in fours (+ up to 3 for 17-19)
    r"|\d{4}([ -])\d{6}\2\d{4,5}"  # Amex 4-6-5, Diners 4-6-4
    r"|\d{13,19}"
    r")(?![\w-]|[.,]\d)"
)
# Issuer prefixes (IIN ranges) and lengths of the major card networks: a Luhn check alone passes one
# random number in ten.
_NETWORKS: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (300, 305, frozenset({14, 16, 17, 18, 19})),  # Diners Club
    (36, 36, frozenset({14, 16, 17, 18, 19})),
    (38, 39, frozenset({16, 17, 18, 19})),
    (6011, 6011, frozenset({16, 17, 18, 19})),  # Discover
    (644, 649, frozenset({16, 17, 18, 19})),
    (65, 65, frozenset({16, 17, 18, 19})),
    (3528, 3589, frozenset({16, 17, 18, 19})),  # JCB
    (62, 62, frozenset({16, 17, 18, 19})),  # UnionPay
    (2200, 2204, frozenset({16, 17, 18, 19})),  # Mir
    (50, 50, frozenset({12, 13, 14, 15, 16, 17, 18, 19})),  # Maestro
    (56, 58, frozenset({12, 13, 14, 15, 16, 17, 18, 19})),
    (67, 67, frozenset({12, 13, 14, 15, 16, 17, 18, 19})),
)


def _issued(digits: str) -> bool:
    for low, high, lengths in _NETWORKS:
        if len(digits) in lengths and low <= int(digits[: len(str(low))]) <= high:
            return True
    return False


def cards(text: str) -> Iterator[Hit]:
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if _issued(digits) and luhn.is_valid(digits):
            yield Hit("CREDIT_CARD", match.start(), match.end(), 1.0)


# -- IBAN --------------------------------------------------------------------------------------------

_IBAN = re.compile(
    r"(?<![\w-])[A-Z]{2}\d{2}(?:"
    r"(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?"  # printed in groups of four
    r"|[A-Z0-9]{11,30}"  # electronic format
    r")(?![\w-])"
)


def ibans(text: str) -> Iterator[Hit]:
    for match in _IBAN.finditer(text):
        candidate = match.group()
        # A trailing word in capitals (a BIC, "EUR") can join the last group: retry without it.
        while candidate:
            if iban.is_valid(candidate):
                yield Hit("IBAN_CODE", match.start(), match.start() + len(candidate), 1.0)
                break
            candidate = candidate.rpartition(" ")[0]


# -- IP addresses ------------------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?:%[\w.]+)?"
    r"(?![\w:]|\.\d)"
)
# Dotted quads that are versions, not addresses.
_VERSION_WORDS = keywords("version", "ver.", "v.", "release", "build", "firmware", "oid", "rev", "sdk")
# A product token right before the quad ("Chrome/124.0.0.0"): the quad is the product's version. Only a
# token that starts a word counts: in "/hosts/10.0.0.1" or "http://10.0.0.1" the quad is an address.
_PRODUCT = re.compile(r"(?:^|(?<=[\s(;,\[\"']))([A-Za-z][\w.+-]*)/$")
# User-Agent products and HTTP clients that write their version after a slash.
_PRODUCTS = frozenset(
    (
        "mozilla", "applewebkit", "webkit", "khtml", "gecko", "trident", "presto", "blink", "version",
        "mobile", "chrome", "chromium", "headlesschrome", "crios", "firefox", "fxios", "safari", "edge",
        "edg", "edga", "edgios", "opr", "opera", "msie", "samsungbrowser", "yabrowser", "ucbrowser",
        "vivaldi", "brave", "electron", "thunderbird", "curl", "wget", "okhttp", "dalvik", "java",
        "python", "python-requests", "python-urllib", "python-httpx", "aiohttp", "go-http-client",
        "postmanruntime", "node", "node-fetch", "axios", "undici", "libwww-perl", "apache-httpclient",
        "googlebot", "bingbot",
    )
)  # fmt: skip
_USER_AGENT = re.compile(r"user-agent|\bmozilla/\d", re.IGNORECASE)


def _version(text: str, start: int) -> bool:
    before = text[max(0, start - 20) : start]
    if _VERSION_WORDS.search(before):
        return True
    product = _PRODUCT.search(text, max(0, start - 40), start)
    # Any product token in a User-Agent string is followed by its version.
    return product is not None and (
        product.group(1).lower() in _PRODUCTS or _USER_AGENT.search(text) is not None
    )


def ips(text: str) -> Iterator[Hit]:
    for match in _IPV4.finditer(text):
        # 255.x.x.x is reserved (broadcast), never a host: written down, it is a netmask.
        if not _version(text, match.start()) and not match.group().startswith("255."):
            yield Hit("IP_ADDRESS", match.start(), match.end(), 0.95)
    for match in _IPV6.finditer(text):
        candidate = match.group().rstrip(":") if not match.group().endswith("::") else match.group()
        if not re.search(r"\d", candidate) or candidate.count(":") < 2:
            continue  # "std::vector", "::", timestamps
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield Hit("IP_ADDRESS", match.start(), match.start() + len(candidate), 0.95)
