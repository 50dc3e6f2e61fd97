"""Builds tests/data/redaction_labelled.jsonl, the labelled set the local redaction is measured on.

Run `uv run python tests/data/redaction_generate.py` to rewrite it; the output is deterministic (fixed
seed). Each line: {"id", "kind": "positive"|"negative", "text", "entities": [{"type", "start", "end"}]}.

Values are made the way their issuers make them (numbering ranges, check digits computed with the
standard algorithm from python-stdnum), then written into sentences in several languages and formats.
Negatives are hard on purpose: order numbers, timestamps, versions, hashes, UUIDs, numbers with a wrong
check digit, phone-shaped numbers that are not phone numbers, the word "password" without a password.
The sentences and spans are written independently of the recognisers; nothing here imports them.
"""

# Seeded pseudo-randomness makes test data, not secrets; the set is multilingual on purpose.
# ruff: noqa: S311, RUF001

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from pathlib import Path

import phonenumbers
from stdnum import iban, luhn, verhoeff
from stdnum.au import abn
from stdnum.br import cpf
from stdnum.es import dni
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.it import codicefiscale
from stdnum.us import rtn

OUT = Path(__file__).with_name("redaction_labelled.jsonl")
rng = random.Random(20240501)

# A sentence is a list of parts: plain strings, or (entity type, value) pairs.
Part = str | tuple[str, str]


def digits(n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def chars(alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits
UPPER_NUM = string.ascii_uppercase + string.digits
LOWER_NUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"

# -- values ------------------------------------------------------------------------------------------

FIRST = [
    "jane",
    "omar",
    "li.wei",
    "maria",
    "k.tanaka",
    "sven",
    "amelie",
    "rahul",
    "chloe",
    "diego",
    "anna-lena",
    "joão",
]
LAST = ["doe", "haddad", "schmidt", "rossi", "nguyen", "garcia", "o.connor", "dubois", "kowalski", "silva"]
DOMAINS = [
    "example.com",
    "mail.example.org",
    "company.co.uk",
    "uni-heidelberg.de",
    "correo.es",
    "posteo.de",
    "example.fr",
    "sub.domain.example.io",
    "empresa.com.br",
    "example.jp",
    "gmail.com",
    "outlook.com",
]


def email() -> str:
    local = rng.choice(FIRST)
    style = rng.randrange(4)
    if style == 1:
        local += "." + rng.choice(LAST)
    elif style == 2:
        local += rng.choice(["+news", "+billing", "_" + digits(2), "2024"])
    elif style == 3:
        local = local[0] + rng.choice(LAST)
    value = f"{local}@{rng.choice(DOMAINS)}"
    return value.upper() if rng.random() < 0.08 else value


# Country code, national formats (# = random digit) with numbering ranges in use.
PHONES: dict[str, list[str]] = {
    "US": [
        "(212) 5##-####",
        "415-2##-####",
        "+1 646 3## ####",
        "1-303-4##-####",
        "617.5##.####",
        "+1 (312) 7##-####",
    ],
    "GB": ["+44 20 7946 0###", "+44 7700 900###", "020 7946 0###", "07700 900###", "+44 161 496 0###"],
    "DE": ["+49 30 2##### ##", "+49 151 2#######", "030 2#######", "0171 2######", "+49 89 2#######"],
    "FR": ["+33 1 4# ## ## ##", "06 1# ## ## ##", "+33 6 1# ## ## ##", "01 4# ## ## ##"],
    "ES": ["+34 91 2## ## ##", "612 3## ###", "+34 6## ### ###", "93 4## ## ##"],
    "IT": ["+39 06 4### ####", "+39 347 ### ####", "02 8### ####"],
    "NL": ["+31 20 5## ####", "06 1234 ####", "+31 6 2### ####"],
    "BR": ["+55 11 9####-####", "+55 21 3###-####", "(11) 9####-####"],
    "IN": ["+91 98### #####", "+91 22 2### ####"],
    "JP": ["+81 3-5###-####", "090-1###-####", "03-5###-####"],
    "AU": ["+61 2 9### ####", "0412 ### ###", "+61 412 ### ###"],
    "MX": ["+52 55 5### ####"],
    "CH": ["+41 44 6## ## ##", "044 6## ## ##"],
}


def phone(country: str | None = None) -> tuple[str, str]:
    country = country or rng.choice(list(PHONES))
    for _ in range(200):
        value = "".join(digits(1) if c == "#" else c for c in rng.choice(PHONES[country]))
        # Sanity check of the generator, not of the recogniser: the number must exist in its plan.
        if phonenumbers.is_valid_number(phonenumbers.parse(value, country)):
            return country, value
    raise RuntimeError(f"no valid {country} number generated")


CARD_PREFIXES = [
    ("4", 16),
    ("4", 16),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
    ("65", 16),
    ("3528", 16),
    ("36", 14),
    ("62", 16),
]


def card_digits() -> str:
    prefix, length = rng.choice(CARD_PREFIXES)
    body = prefix + digits(length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def card_format(number: str) -> str:
    sep = rng.choice([" ", "-", ""])
    if len(number) in (14, 15):  # Amex 4-6-5, Diners 4-6-4
        groups = [number[:4], number[4:10], number[10:]]
    else:
        groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    return sep.join(groups)


IBAN_FORMATS = {
    "DE": lambda: digits(18),
    "GB": lambda: chars(string.ascii_uppercase, 4) + digits(14),
    "NL": lambda: chars(string.ascii_uppercase, 4) + digits(10),
    "IT": lambda: chars(string.ascii_uppercase, 1) + digits(10) + chars(UPPER_NUM, 12),
    "CH": lambda: digits(5) + chars(UPPER_NUM, 12),
    "AT": lambda: digits(16),
    "PL": lambda: digits(24),
    "SE": lambda: digits(20),
    "IE": lambda: chars(string.ascii_uppercase, 4) + digits(14),
    "DK": lambda: digits(14),
    "LU": lambda: digits(3) + chars(UPPER_NUM, 13),
    "FR": lambda: digits(10) + chars(UPPER_NUM, 11) + digits(2),
    "ES": lambda: digits(20),
    "BE": lambda: digits(12),
}


def iban_compact() -> str:
    for _ in range(500):
        country = rng.choice(list(IBAN_FORMATS))
        bban = IBAN_FORMATS[country]()
        value = country + iban.calc_check_digits(country + "00" + bban) + bban
        if iban.is_valid(value):  # national check digits (FR, ES, BE, ...) must also hold
            return value
    raise RuntimeError("no IBAN generated")


def iban_format(value: str) -> str:
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4)) if rng.random() < 0.6 else value


def ipv4(private: bool | None = None) -> str:
    private = rng.random() < 0.4 if private is None else private
    if private:
        return rng.choice(
            [
                f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                f"172.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            ]
        )
    return ".".join(str(rng.randrange(1, 224) if i == 0 else rng.randrange(256)) for i in range(4))


def ipv6() -> str:
    groups = [format(rng.randrange(65536), "x") for _ in range(8)]
    style = rng.randrange(5)
    if style == 0:
        return ":".join(groups)
    if style == 1:
        return "2001:db8:" + ":".join(groups[:2]) + "::" + groups[7]
    if style == 2:
        return f"fe80::{groups[4]}:{groups[5]}:{groups[6]}:{groups[7]}"
    if style == 3:
        return f"::ffff:{ipv4(False)}"
    return f"2a00:1450:{groups[2]}:{groups[3]}::{groups[7]}"


def ssn() -> str:
    while True:
        area, group, serial = rng.randrange(1, 900), rng.randrange(1, 100), rng.randrange(1, 10000)
        if area != 666:
            return f"{area:03d}-{group:02d}-{serial:04d}"


def itin() -> str:
    return f"9{digits(2)}-{rng.choice([70, 75, 78, 83, 88, 90, 92, 94, 99])}-{digits(4)}"


def spanish_id() -> str:
    if rng.random() < 0.7:
        number = digits(8)
        return number + dni.calc_check_digit(number)
    prefix = rng.choice("XYZ")
    number = digits(7)
    return prefix + number + dni.calc_check_digit(str("XYZ".index(prefix)) + number)


def complete(body: str, is_valid: Callable[[str], bool], width: int) -> str | None:
    """`body` plus the check digits that make it valid (the search is over every possible suffix)."""
    for check in range(10**width):
        if is_valid(body + f"{check:0{width}d}"):
            return body + f"{check:0{width}d}"
    return None


def nhs_number() -> str:
    while (value := complete(digits(9), nhs.is_valid, 1)) is None:
        pass
    return f"{value[:3]} {value[3:6]} {value[6:]}" if rng.random() < 0.7 else value


def fiscal_code() -> str:
    body = (
        chars(string.ascii_uppercase, 6)
        + digits(2)
        + rng.choice("ABCDEHLMPRST")
        + f"{rng.randrange(1, 32) + rng.choice([0, 40]):02d}"  # day of birth, +40 for women
        + rng.choice("ABCDEFGHILM")
        + digits(3)
    )
    return body + codicefiscale.calc_check_digit(body)


def cpf_number() -> str:
    while (value := complete(digits(9), cpf.is_valid, 2)) is None:
        pass
    return f"{value[:3]}.{value[3:6]}.{value[6:9]}-{value[9:]}"


def nir_number() -> str:
    body = (
        rng.choice("12")
        + digits(2)
        + f"{rng.randrange(1, 13):02d}"
        + f"{rng.randrange(1, 96):02d}"
        + digits(6)
    )
    value = body + nir.calc_check_digits(body)
    return f"{value[0]} {value[1:3]} {value[3:5]} {value[5:7]} {value[7:10]} {value[10:13]} {value[13:]}"


def aadhaar_number() -> str:
    body = rng.choice("23456789") + digits(10)
    value = body + verhoeff.calc_check_digit(body)
    return f"{value[:4]} {value[4:8]} {value[8:]}"


def abn_number() -> str:
    body = digits(9)
    value = abn.calc_check_digits(body) + body
    return f"{value[:2]} {value[2:5]} {value[5:8]} {value[8:]}"


def routing_number() -> str:
    body = rng.choice(["0", "1", "2", "3"]) + digits(7)
    return body + rtn.calc_check_digit(body)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt() -> str:
    header = b64url(json.dumps({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}).encode())
    payload = b64url(
        json.dumps(
            {"sub": digits(8), "name": rng.choice(FIRST), "iat": 1700000000 + rng.randrange(10**6)}
        ).encode()
    )
    return f"{header}.{payload}.{b64url(rng.randbytes(32))}"


def private_key() -> tuple[str, str]:
    kind, label = rng.choice(
        [
            ("RSA_PRIVATE_KEY", "RSA PRIVATE KEY"),
            ("SSH_EC_PRIVATE_KEY", "EC PRIVATE KEY"),
            ("SSH_DSA_PRIVATE_KEY", "DSA PRIVATE KEY"),
            ("PRIVATE_KEY", "PRIVATE KEY"),
            ("PRIVATE_KEY", "OPENSSH PRIVATE KEY"),
            ("PGP_PRIVATE_KEY_BLOCK", "PGP PRIVATE KEY BLOCK"),
        ]
    )
    body = base64.b64encode(rng.randbytes(rng.randrange(90, 200))).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return kind, "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])


SECRET_VALUES: list[Callable[[], tuple[str, str]]] = [
    lambda: ("AMAZON_AWS_ACCESS_KEY_ID", rng.choice(["AKIA", "ASIA"]) + chars(UPPER_NUM, 16)),
    lambda: ("GITHUB_ACCESS_TOKEN", rng.choice(["ghp_", "gho_", "ghs_"]) + chars(ALNUM, 36)),
    lambda: ("SLACK_TOKEN", f"xox{rng.choice('bp')}-{digits(11)}-{digits(12)}-{chars(LOWER_NUM, 24)}"),
    lambda: (
        "SLACK_WEBHOOK",
        f"https://hooks.slack.com/services/T{chars(UPPER_NUM, 8)}/B{chars(UPPER_NUM, 10)}/{chars(ALNUM, 24)}",
    ),
    lambda: ("STRIPE_API_KEY", "sk_live_" + chars(ALNUM, rng.choice([24, 99]))),
    lambda: ("STRIPE_RESTRICTED_API_KEY", "rk_live_" + chars(ALNUM, 24)),
    lambda: ("JWT_TOKEN", jwt()),
    lambda: ("PANGEA_TOKEN", "pts_" + chars(LOWER_NUM, 32)),
    lambda: ("GOOGLE_API_KEY", "AIza" + chars(ALNUM + "_-", 35)),
    lambda: ("TWILIO_API_KEY", "SK" + chars(HEX, 32)),
    lambda: ("MAILCHIMP_API_KEY", chars(HEX, 32) + "-us" + str(rng.randrange(1, 21))),
    lambda: ("SENDGRID_API_KEY", f"SG.{chars(ALNUM + '_-', 22)}.{chars(ALNUM + '_-', 43)}"),
    lambda: ("GITLAB_TOKEN", "glpat-" + chars(ALNUM + "_-", 20)),
    lambda: ("OPENAI_API_KEY", "sk-" + chars(ALNUM, 20) + "T3BlbkFJ" + chars(ALNUM, 20)),
]

# -- sentences ----------------------------------------------------------------------------------------

EMAIL_LINES: list[Callable[[str], list[Part]]] = [
    lambda v: ["Please reply to ", ("EMAIL_ADDRESS", v), " by Friday."],
    lambda v: ["Contact: ", ("EMAIL_ADDRESS", v)],
    lambda v: ["<", ("EMAIL_ADDRESS", v), ">"],
    lambda v: ["Schreiben Sie an ", ("EMAIL_ADDRESS", v), ", danke!"],
    lambda v: ["Merci d'écrire à ", ("EMAIL_ADDRESS", v), "."],
    lambda v: ["From: Support Team (", ("EMAIL_ADDRESS", v), ")"],
    lambda v: ['{"user": "', ("EMAIL_ADDRESS", v), '", "active": true}'],
    lambda v: ["mailto:", ("EMAIL_ADDRESS", v)],
    lambda v: ["連絡先：", ("EMAIL_ADDRESS", v), " までご連絡ください。"],
    lambda v: ["cc ", ("EMAIL_ADDRESS", v), "; bcc nobody"],
]
PHONE_LINES: dict[str, list[Callable[[str], list[Part]]]] = {
    "any": [
        lambda v: ["Call me at ", ("PHONE_NUMBER", v), " after 5pm."],
        lambda v: ["Phone: ", ("PHONE_NUMBER", v)],
        lambda v: ["You can reach our hotline on ", ("PHONE_NUMBER", v), "."],
        lambda v: ["Mobile ", ("PHONE_NUMBER", v), " (WhatsApp too)"],
        lambda v: ["tel: ", ("PHONE_NUMBER", v), " | fax: n/a"],
    ],
    "DE": [
        lambda v: ["Sie erreichen mich unter ", ("PHONE_NUMBER", v), "."],
        lambda v: ["Telefon: ", ("PHONE_NUMBER", v)],
    ],
    "FR": [
        lambda v: ["Appelez-moi au ", ("PHONE_NUMBER", v), " demain."],
        lambda v: ["Tél. portable : ", ("PHONE_NUMBER", v)],
    ],
    "ES": [
        lambda v: ["Llámame al ", ("PHONE_NUMBER", v), ", por favor."],
        lambda v: ["Teléfono: ", ("PHONE_NUMBER", v)],
    ],
    "IT": [lambda v: ["Il mio cellulare è ", ("PHONE_NUMBER", v), "."]],
    "NL": [lambda v: ["Bel me op ", ("PHONE_NUMBER", v), "."]],
    "BR": [lambda v: ["Meu celular: ", ("PHONE_NUMBER", v)]],
    "JP": [lambda v: ["電話番号は", ("PHONE_NUMBER", v), "です。"]],
    "GB": [lambda v: ["Ring the office on ", ("PHONE_NUMBER", v), " any time."]],
    "AU": [lambda v: ["Give us a call on ", ("PHONE_NUMBER", v), "."]],
}


def phone_parts() -> list[Part]:
    country, value = phone()
    international = value.startswith("+") or country == "US"
    # National formats are written where the country is clear from the language or the label.
    templates = PHONE_LINES["any"] if international else PHONE_LINES.get(country, PHONE_LINES["any"])
    if international and rng.random() < 0.4:
        templates = PHONE_LINES.get(country, templates)
    return rng.choice(templates)(value)


def positive_parts() -> list[list[Part]]:
    out: list[list[Part]] = []
    for _ in range(30):
        out.append(rng.choice(EMAIL_LINES)(email()))
    for _ in range(40):
        out.append(phone_parts())
    for _ in range(22):
        value = card_format(card_digits())
        out.append(
            rng.choice(
                [
                    ["Card number ", ("CREDIT_CARD", value), ", exp 09/27"],
                    ["Charge it to ", ("CREDIT_CARD", value), " please."],
                    ["Kreditkarte: ", ("CREDIT_CARD", value)],
                    ["card=", ("CREDIT_CARD", value), "&cvv=***"],
                    ["Pagué con la tarjeta ", ("CREDIT_CARD", value), "."],
                ]
            )
        )
    for _ in range(20):
        value = iban_format(iban_compact())
        out.append(
            rng.choice(
                [
                    ["Please transfer to IBAN ", ("IBAN_CODE", value), " by Monday."],
                    ["IBAN: ", ("IBAN_CODE", value), "\nBIC: DEUTDEFF"],
                    ["Bankverbindung ", ("IBAN_CODE", value)],
                    ["Virement sur le compte ", ("IBAN_CODE", value), "."],
                    ["Cuenta (", ("IBAN_CODE", value), ")"],
                ]
            )
        )
    for _ in range(22):
        value = ipv4() if rng.random() < 0.6 else ipv6()
        out.append(
            rng.choice(
                [
                    ["Failed login from ", ("IP_ADDRESS", value), " at 03:12"],
                    ["client_ip=", ("IP_ADDRESS", value), " status=403"],
                    ["The server listens on ", ("IP_ADDRESS", value), "."],
                    ["Verbindung von ", ("IP_ADDRESS", value), " abgelehnt"],
                    ['{"src": "', ("IP_ADDRESS", value), '"}'],
                ]
            )
        )
    ids: list[tuple[str, Callable[[], str], list[str]]] = [
        ("US_SSN", ssn, ["My SSN is {}.", "SSN: {}", "social security number {} on file", "{} (SSN)"]),
        ("US_ITIN", itin, ["ITIN {} was issued.", "Taxpayer ITIN: {}"]),
        ("NIF", spanish_id, ["DNI: {}", "Mi NIF es {}.", "NIE {} caducado"]),
        ("UK_NHS", nhs_number, ["NHS number {}", "Patient NHS no. {}"]),
        ("IT_FISCAL_CODE", fiscal_code, ["Codice fiscale: {}", "CF {}"]),
        ("BR_CPF", cpf_number, ["CPF: {}", "Meu CPF é {}."]),
        ("FR_NIR", nir_number, ["N° de sécurité sociale : {}", "NIR {}"]),
        ("IN_AADHAAR", aadhaar_number, ["Aadhaar: {}", "My Aadhaar number is {}"]),
        ("AU_ABN", abn_number, ["ABN {}", "Our ABN: {}"]),
        ("ABA_ROUTING_NUMBER", routing_number, ["Routing number {}", "ABA {}"]),
    ]
    for kind, make, templates in ids:
        for _ in range(8 if kind == "US_SSN" else 4):
            before, _, after = rng.choice(templates).partition("{}")
            out.append([before, (kind, make()), after])
    for _ in range(40):
        kind, value = rng.choice(SECRET_VALUES)()
        out.append(
            rng.choice(
                [
                    ["export TOKEN=", (kind, value)],
                    ['config = {"key": "', (kind, value), '"}'],
                    ["Here is the key: ", (kind, value), " (do not share)"],
                    ["Authorization: Bearer ", (kind, value)],
                    ["leaked in logs: ", (kind, value), "\n"],
                ]
            )
        )
    for _ in range(8):
        kind, value = private_key()
        out.append(["Key file contents:\n", (kind, value), "\n-- end of paste"])
    for _ in range(4):
        secret = chars(ALNUM + "/+", 40)
        out.append(['aws_secret_access_key = "', ("AMAZON_AWS_SECRET_ACCESS_KEY", secret), '"'])
    for _ in range(6):
        password = chars(ALNUM, rng.randrange(8, 14)) + rng.choice("!#%$") + digits(2)
        user = rng.choice(FIRST).replace(".", "")
        out.append(
            [
                f"DATABASE_URL=postgres://{user}:",
                ("BASIC_AUTH", password),
                f"@db{digits(1)}.internal:5432/app",
            ]
        )
    for _ in range(10):
        password = chars(ALNUM, rng.randrange(6, 12)) + rng.choice(["!", "@", "#", "", "9"]) + digits(2)
        out.append(
            rng.choice(
                [
                    ['db_password = "', ("SECRET", password), '"'],
                    ["password: '", ("SECRET", password), "'"],
                    ['API_SECRET="', ("SECRET", password), '"'],
                    ['"client_secret": "', ("SECRET", password), '",'],
                    ["contraseña = '", ("SECRET", password), "'"],
                ]
            )
        )
    # Several entities in one text.
    for _ in range(28):
        country, number = phone("US") if rng.random() < 0.5 else phone()
        if not number.startswith("+") and country != "US":
            number = phonenumbers.format_number(
                phonenumbers.parse(number, country), phonenumbers.PhoneNumberFormat.INTERNATIONAL
            )
        out.append(
            rng.choice(
                [
                    [
                        "Name: A. Smith\nEmail: ",
                        ("EMAIL_ADDRESS", email()),
                        "\nPhone: ",
                        ("PHONE_NUMBER", number),
                        "\n",
                    ],
                    [
                        "Refund card ",
                        ("CREDIT_CARD", card_format(card_digits())),
                        " or wire to ",
                        ("IBAN_CODE", iban_format(iban_compact())),
                        ".",
                    ],
                    [
                        "User ",
                        ("EMAIL_ADDRESS", email()),
                        " logged in from ",
                        ("IP_ADDRESS", ipv4()),
                        " with SSN ",
                        ("US_SSN", ssn()),
                        " on file.",
                    ],
                    ["Kontakt: ", ("EMAIL_ADDRESS", email()), ", Tel. ", ("PHONE_NUMBER", number)],
                    [
                        "Deploy with AWS key ",
                        ("AMAZON_AWS_ACCESS_KEY_ID", "AKIA" + chars(UPPER_NUM, 16)),
                        " from host ",
                        ("IP_ADDRESS", ipv4(True)),
                        ".",
                    ],
                ]
            )
        )
    return out


# -- negatives ----------------------------------------------------------------------------------------


def bad_luhn() -> str:
    number = card_digits()
    return card_format(number[:-1] + str((int(number[-1]) + rng.randrange(1, 10)) % 10))


def bad_iban() -> str:
    value = iban_compact()
    check = (int(value[2:4]) + rng.randrange(1, 97)) % 97 + 2
    return iban_format(value[:2] + f"{check:02d}"[-2:] + value[4:])


def uuid() -> str:
    h = chars(HEX, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


NEGATIVE_MAKERS: list[Callable[[], str]] = [
    lambda: f"Order #{digits(10)} has shipped.",
    lambda: f"Invoice INV-{rng.randrange(2019, 2025)}-{digits(6)} is overdue.",
    lambda: f"PO {rng.choice(['4500', '4510'])}{digits(6)} approved by finance.",
    lambda: (
        f"Die Bestellung {rng.randrange(2019, 2025)}-{digits(6)} wurde am {rng.randrange(1, 29):02d}.03.2024 versandt."
    ),
    lambda: f"Le colis n° 6A{digits(11)} est en cours de livraison.",
    lambda: f"El pedido {digits(6)} llegará el {rng.randrange(1, 29)} de mayo.",
    lambda: f"注文番号 {rng.randrange(2019, 2025)}{digits(4)}-{digits(3)} を受け付けました。",
    lambda: (
        f"Timestamp: 2024-0{rng.randrange(1, 10)}-{rng.randrange(10, 29)}T{rng.randrange(10, 24)}:{rng.randrange(10, 60)}:{rng.randrange(10, 60)}Z"
    ),
    lambda: f"epoch={1600000000 + rng.randrange(10**8)} ms={digits(3)}",
    lambda: (
        f"Meeting moved to {rng.randrange(1, 13):02d}/{rng.randrange(1, 29):02d}/2024 at {rng.randrange(8, 18)}:{rng.choice(['00', '30'])}."
    ),
    lambda: (
        f"Uptime {rng.randrange(1, 99)}:{rng.randrange(10, 60)}:{rng.randrange(10, 60)}, load 0.{digits(2)}"
    ),
    lambda: f"Released v{rng.randrange(1, 12)}.{rng.randrange(0, 30)}.{rng.randrange(0, 50)} with bug fixes.",
    lambda: (
        f"Upgrade to version {rng.randrange(1, 20)}.{rng.randrange(0, 10)}.{rng.randrange(0, 10)}.{rng.randrange(0, 200)} before Friday."
    ),
    lambda: (
        f"User-Agent: Mozilla/5.0 Chrome/{rng.randrange(90, 125)}.0.{digits(4)}.{digits(3)} Safari/537.36"
    ),
    lambda: (
        f"Built with Python 3.{rng.randrange(8, 13)}.{rng.randrange(0, 12)} and pip {rng.randrange(20, 25)}.{rng.randrange(0, 4)}"
    ),
    lambda: f"request_id={uuid()}",
    lambda: f"commit {chars(HEX, 40)} merged",
    lambda: f"sha256: {chars(HEX, 64)}",
    lambda: f"md5 {chars(HEX, 32)}  backup.tar.gz",
    lambda: f"Card ending {digits(4)} was declined.",
    lambda: f"Card number {bad_luhn()} failed validation.",
    lambda: f"IBAN {bad_iban()} is invalid, please check.",
    lambda: f"ISBN 978-{rng.randrange(0, 2)}-{digits(3)}-{digits(5)}-{digits(1)}",
    lambda: f"Tracking number 1Z{chars(UPPER_NUM, 6)}{digits(10)}",
    lambda: (
        f"Ticket {rng.randrange(2019, 2025)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}-{digits(4)} closed."
    ),
    lambda: f"ZIP {rng.randrange(10000, 99999)}-{digits(4)}",
    lambda: f"Population: {rng.randrange(1, 999)},{digits(3)},{digits(3)} people",
    lambda: f"Total: ${rng.randrange(1, 999)},{digits(3)}.{digits(2)}",
    lambda: f"Coordinates {rng.randrange(-89, 89)}.{digits(4)}, {rng.randrange(-179, 179)}.{digits(4)}",
    lambda: f"SKU {digits(3)}-{digits(3)}-{digits(3)} out of stock",
    lambda: f"SSN {rng.choice(['000', '666'])}-{digits(2)}-{digits(4)} rejected: invalid area",
    lambda: f"Part no. {digits(12)} in warehouse B",
    lambda: f"MAC address {':'.join(chars(HEX, 2) for _ in range(6))}",
    lambda: f"OID 1.3.6.1.4.1.{digits(4)}.{rng.randrange(1, 9)}",
    lambda: "Use std::vector<int> and std::map for the cache.",
    lambda: f"Bad address 256.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)} rejected",
    lambda: f"Subnet mask 255.255.{rng.choice(['255', '254', '0'])}.0",
    lambda: "Please reset your password by clicking the link in the e-mail.",
    lambda: "The password must contain at least 12 characters and one digit.",
    lambda: "password: ********",
    lambda: 'password = os.environ["DB_PASSWORD"]',
    lambda: "api_key: ${API_KEY}",
    lambda: 'secret_name = "prod-db-credentials"',
    lambda: "Forgot your password? Contact the help desk.",
    lambda: "Das Passwort wurde erfolgreich geändert.",
    lambda: "Le mot de passe doit être changé tous les 90 jours.",
    lambda: "La contraseña se ha restablecido.",
    lambda: "AWS access keys start with AKIA and must be rotated every 90 days.",
    lambda: "Store the token in Vault, never in the repository.",
    lambda: "npm install lodash@4.17.21 react@18.2.0",
    lambda: "Use icon@2x.png and icon@3x.png for retina screens.",
    lambda: "Follow @pangea_cloud for updates.",
    lambda: f"Room {rng.randrange(100, 999)}, floor {rng.randrange(1, 30)}, building {rng.choice('ABC')}",
    lambda: f"The batch contained {digits(5)} records in {rng.randrange(2, 60)} seconds.",
    lambda: f"Rechnungsnummer RE-{digits(8)} vom {rng.randrange(1, 29)}.{rng.randrange(1, 13)}.2023",
    lambda: f"Numéro de commande : CMD{digits(9)}",
    lambda: f"Lot {digits(2)}-{digits(7)} expires {rng.randrange(1, 13):02d}/{rng.randrange(25, 30)}",
    lambda: f"Account #{digits(8)} balance: {rng.randrange(100, 9999)}.{digits(2)} EUR",
    lambda: f"Error code 0x{chars(HEX.upper(), 8)} at offset {digits(6)}",
    lambda: (
        f"Build {rng.randrange(2019, 2025)}.{rng.randrange(1, 13)}.{rng.randrange(1, 29)}.{digits(4)} deployed"
    ),
    lambda: f"DNI pendiente: {digits(8)} (falta la letra)",
    lambda: f"Ref. {chars(string.ascii_uppercase, 2)}{digits(2)}{chars(UPPER_NUM, 10)} (not an IBAN)",
    lambda: f"Conference call ID {digits(3)} {digits(3)} {digits(3)}#",
    lambda: f"Price per unit {rng.randrange(1, 99)}.{digits(2)} USD, qty {rng.randrange(1, 500)}",
    lambda: f"Flight LH{digits(4)} departs 14:{rng.randrange(10, 59)} from gate B{rng.randrange(1, 60)}.",
    lambda: f"Serial number SN-{chars(UPPER_NUM, 12)}",
    lambda: f"The test suite ran {digits(4)} tests; {rng.randrange(0, 9)} failed.",
]


def negatives() -> list[str]:
    out = [maker() for maker in NEGATIVE_MAKERS]  # every kind at least once
    while len(out) < 240:
        out.append(rng.choice(NEGATIVE_MAKERS)())
    return out


# Written by hand, before the recognisers were run on them (the generated rows above were used while the
# recognisers were developed; these were not).
JWT_HEADER = b64url(b'{"alg":"HS256","typ":"JWT"}')
HANDWRITTEN_POSITIVE: list[list[Part]] = [
    ["Hi, it's Tom. Text me on ", ("PHONE_NUMBER", "07911 123456"), " if the train is late."],
    ["Our Paris office: ", ("PHONE_NUMBER", "+33 (0)1 44 55 66 77"), "."],
    ["Payment failed for card ", ("CREDIT_CARD", "5425-2334-3010-9903"), " (Mastercard)."],
    ["Visa ", ("CREDIT_CARD", "4000056655665556"), " on file"],
    ["Amex: ", ("CREDIT_CARD", "3782 822463 10005")],
    ["Überweisung an ", ("IBAN_CODE", "GB29 NWBK 6016 1331 9268 19"), " bitte bis Freitag."],
    ["IBAN ", ("IBAN_CODE", "FR14 2004 1010 0505 0001 3M02 606")],
    ["ssh root@", ("IP_ADDRESS", "203.0.113.54"), " -p 2222"],
    ["X-Forwarded-For: ", ("IP_ADDRESS", "198.51.100.7"), ", ", ("IP_ADDRESS", "10.1.2.3")],
    ["ping6 ", ("IP_ADDRESS", "2001:4860:4860::8888")],
    ["GITHUB_TOKEN=", ("GITHUB_ACCESS_TOKEN", "ghp_R8x2Lm4Qp9Zt7Vw1Yc3Nb6Hd5Jf0Ks2Ae4Gi")],
    [
        "curl -H 'Authorization: Bearer ",
        ("JWT_TOKEN", JWT_HEADER + ".eyJ1aWQiOjQyfQ.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"),
        "' https://api.example.com",
    ],
    ["My SSN is ", ("US_SSN", "078-05-1120")],
    ["E-Mail: ", ("EMAIL_ADDRESS", "müller.hans@beispiel.de")],
    ["slack: ", ("SLACK_TOKEN", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx")],
    ["stripe.api_key = '", ("STRIPE_API_KEY", "sk_live_51H8aBcDeFgHiJkLmNoPqRsTu"), "'"],
    [
        "Llama al ",
        ("PHONE_NUMBER", "+34 612 34 56 78"),
        " o escribe a ",
        ("EMAIL_ADDRESS", "ana.lopez@correo.es"),
    ],
    [
        "Server ",
        ("IP_ADDRESS", "192.0.2.146"),
        " rejected the key ",
        ("AMAZON_AWS_ACCESS_KEY_ID", "AKIAJ3MXL7Q2WZ5P4R6T"),
    ],
    ["Aadhaar ", ("IN_AADHAAR", "2345 6789 0124")],
    ["Telefon (Büro): ", ("PHONE_NUMBER", "+49 (0)89 1234567")],
    ["WhatsApp ", ("PHONE_NUMBER", "+55 21 98765-4321")],
    ["Contact Raj at ", ("PHONE_NUMBER", "+91-98200-12345"), "."],
    ["Please wire the deposit to ", ("IBAN_CODE", "NL91 ABNA 0417 1643 00"), "."],
    ["DB: mysql://admin:", ("BASIC_AUTH", "Sup3r$ecret"), "@", ("IP_ADDRESS", "10.0.0.5"), ":3306/shop"],
    [
        "",
        (
            "PRIVATE_KEY",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----",
        ),
    ],
    ["Kundenservice erreichen Sie unter ", ("PHONE_NUMBER", "+43 1 5128822"), " (Mo-Fr)."],
    ["SIN ", ("CA_SIN", "130 692 544"), " on the T4 slip"],
    ["Mi DNI es ", ("NIF", "12345678Z"), " y mi móvil ", ("PHONE_NUMBER", "612 345 678")],
]
HANDWRITTEN_NEGATIVE = [
    "The meeting is at 10:30 on 2024-06-12 in room 4.12.",
    "Download v3.2.1.5 from the releases page.",
    "Tracking: 9400 1000 0000 0000 0000 00",
    "Patch KB5034441 fixes CVE-2024-21412.",
    "The hash is 5d41402abc4b2a76b9719d911017c592.",
    "Coordinates: 48.8584° N, 2.2945° E",
    "Items 1234-5678-9012-3456 in the test fixture are fake.",
    "Your verification code is 482913.",
    "Fax number: not available",
    "See RFC 3986 section 3.2.1 for userinfo.",
    "The password field is required.",
    "token_expiry = '2024-12-31T00:00:00Z'",
    "api_key_name: 'billing-service-key'",
    "Price: 1.299,00 € (inkl. MwSt.)",
    "Le vol AF1234 part à 18h45 du terminal 2E.",
    "ID de transacción: 7f3e9a2c-41b8-4d2e-9c1a-6b5f8e3d2a10",
    "Docker image sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "IPv6 uses 128-bit addresses written as eight groups of hex digits.",
    "Example: user@example",
    "Call extension 4412 for support.",
    "Bank sort code 20-00-00, account 12345678",
    "Steuernummer 21/815/08150",
    "ISO 8601: 2024-03-15T14:30:00+01:00",
    "Order total 1,234,567.89 JPY; ref 2024/03/000123",
    "Set PASSWORD_MIN_LENGTH=12 in the config.",
]


def _sanity(parts: list[Part]) -> None:
    # Checks of the data, not of the recognisers: each value is what its label says by its issuer's rules.
    for part in parts:
        if isinstance(part, tuple):
            kind, value = part
            if kind == "CREDIT_CARD":
                assert luhn.is_valid(value.replace(" ", "").replace("-", "")), value
            elif kind == "IBAN_CODE":
                assert iban.is_valid(value), value
            elif kind == "GITHUB_ACCESS_TOKEN":
                assert len(value) == 40, value
            elif kind == "AMAZON_AWS_ACCESS_KEY_ID":
                assert len(value) == 20, value


def assemble(parts: list[Part]) -> tuple[str, list[dict[str, object]]]:
    text, entities = "", []
    for part in parts:
        if isinstance(part, str):
            text += part
        else:
            kind, value = part
            entities.append({"type": kind, "start": len(text), "end": len(text) + len(value)})
            text += value
    return text, entities


def main() -> None:
    rows = []
    for i, parts in enumerate(positive_parts()):
        text, entities = assemble(parts)
        rows.append({"id": f"p{i:03d}", "kind": "positive", "text": text, "entities": entities})
    for i, text in enumerate(negatives()):
        rows.append({"id": f"n{i:03d}", "kind": "negative", "text": text, "entities": []})
    for i, parts in enumerate(HANDWRITTEN_POSITIVE):
        _sanity(parts)
        text, entities = assemble(parts)
        rows.append({"id": f"hp{i:02d}", "kind": "positive", "text": text, "entities": entities})
    for i, text in enumerate(HANDWRITTEN_NEGATIVE):
        rows.append({"id": f"hn{i:02d}", "kind": "negative", "text": text, "entities": []})
    OUT.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    kinds = [row["kind"] for row in rows]
    print(f"{OUT.name}: {kinds.count('positive')} positive, {kinds.count('negative')} negative")


if __name__ == "__main__":
    main()
