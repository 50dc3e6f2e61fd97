# ruff: noqa: RUF001, S311, S324  (multilingual test text, seeded test data, non-security hashes)
"""Write tests/data/redaction_heldout.jsonl, a blind held-out set for the local redaction engine.

The sentences are hand-written. Values that need valid (or deliberately invalid) check digits are
made here with a fixed seed and checked with python-stdnum and phonenumbers, so the output is
reproducible. This script does not import the recognisers.

Markup: a labelled entity is written ``⟦TYPE¦value⟧`` inside a row's text; the markers are removed
and the span is computed from the position of the value, so offsets cannot be off by one.

Run: ``uv run python tests/data/redaction_heldout_generate.py``
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import string
import uuid
from pathlib import Path

import phonenumbers
from stdnum import iban, luhn
from stdnum.au import abn, tfn
from stdnum.br import cpf
from stdnum.ca import sin
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.gb import nhs
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.us import itin, rtn, ssn

OUT = Path(__file__).with_name("redaction_heldout.jsonl")
rng = random.Random(20240917)

DIG = string.digits
UP = string.ascii_uppercase
ALNUM = string.ascii_letters + string.digits


def rand(alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def until(make, valid):
    for _ in range(100_000):
        v = make()
        if valid(v):
            return v
    raise RuntimeError("no valid value")


# ---------------------------------------------------------------- cards
def card(prefix: str, length: int) -> str:
    body = prefix + rand(DIG, length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def group(s: str, sizes, sep=" ") -> str:
    out, i = [], 0
    for n in sizes:
        out.append(s[i : i + n])
        i += n
    return sep.join(out)


def bad_card(prefix: str, length: int) -> str:
    good = card(prefix, length)
    last = str((int(good[-1]) + 3) % 10)
    bad = good[:-1] + last
    assert not luhn.is_valid(bad)
    return bad


VISA = card("4", 16)
VISA2 = card("4539", 16)
VISA3 = card("4916", 16)
MC = card("5425", 16)
MC2 = card("2221", 16)
MC3 = card("5186", 16)
AMEX = card("37", 15)
AMEX2 = card("34", 15)
DISC = card("6011", 16)
JCB = card("3530", 16)
DINERS = card("3056", 14)
UNIONPAY = card("6212", 16)
MAESTRO = card("6759", 19)
MIR = card("2200", 16)

# ---------------------------------------------------------------- IBANs
BBAN = {
    "DE": "8n10n",
    "GB": "4a6n8n",
    "FR": "5n5n11n2n",
    "ES": "4n4n1n1n10n",
    "IT": "1a5n5n12n",
    "NL": "4a10n",
    "BE": "3n7n2n",
    "CH": "5n12n",
    "AT": "5n11n",
    "PL": "8n16n",
    "PT": "4n4n11n2n",
    "IE": "4a6n8n",
    "SE": "3n17n",
    "NO": "4n6n1n",
    "DK": "4n9n1n",
    "FI": "3n11n",
}


def make_iban(cc: str) -> str:
    def make():
        bban = ""
        for n, kind in re.findall(r"(\d+)([an])", BBAN[cc]):
            bban += rand(UP if kind == "a" else DIG, int(n))
        if cc == "NL":
            bban = rng.choice(["ABNA", "INGB", "RABO", "TRIO"]) + bban[4:]
        if cc == "GB":
            bban = rng.choice(["BARC", "LOYD", "NWBK", "HBUK", "MIDL"]) + bban[4:]
        if cc == "IE":
            bban = rng.choice(["AIBK", "BOFI"]) + bban[4:]
        return cc + iban.calc_check_digits(cc + "00" + bban) + bban

    return until(make, iban.is_valid)


def printed(s: str) -> str:
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


IB = {cc: make_iban(cc) for cc in BBAN}


def bad_iban(cc: str) -> str:
    good = make_iban(cc)
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    assert not iban.is_valid(bad)
    return bad


# ---------------------------------------------------------------- national ids
def make_ssn():
    return until(
        lambda: f"{rng.randint(1, 899):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
        lambda v: ssn.is_valid(v) and not v.startswith("666"),
    )


SSN1, SSN2, SSN3, SSN4, SSN5, SSN6 = (make_ssn() for _ in range(6))
ITIN1 = until(lambda: "9" + rand(DIG, 2) + "-" + str(rng.randint(70, 88)) + "-" + rand(DIG, 4), itin.is_valid)
DNI1 = until(lambda: rand(DIG, 8) + rng.choice(UP), dni.is_valid)
DNI2 = until(lambda: rand(DIG, 8) + rng.choice(UP), dni.is_valid)
NIE1 = until(lambda: rng.choice("XYZ") + rand(DIG, 7) + rng.choice(UP), nie.is_valid)
NHS1 = until(lambda: rand(DIG, 10), nhs.is_valid)
NHS1_P = f"{NHS1[:3]} {NHS1[3:6]} {NHS1[6:]}"
CF_BASES = ["RSSMRA85T10A562", "BNCGLI92E55F205", "VRDLCU78B02H501"]
CF = [b + codicefiscale.calc_check_digit(b) for b in CF_BASES]
for c in CF:
    assert codicefiscale.is_valid(c), c
CPF1 = until(lambda: rand(DIG, 11), cpf.is_valid)
CPF2 = until(lambda: rand(DIG, 11), cpf.is_valid)
CPF1_F = f"{CPF1[:3]}.{CPF1[3:6]}.{CPF1[6:9]}-{CPF1[9:]}"
CPF2_F = f"{CPF2[:3]}.{CPF2[3:6]}.{CPF2[6:9]}-{CPF2[9:]}"


def make_nir():
    base = (
        rng.choice("12")
        + f"{rng.randint(60, 99):02d}{rng.randint(1, 12):02d}"
        + rng.choice(["75", "69", "13", "33"])
        + rand(DIG, 6)
    )
    return base + nir.calc_check_digits(base)


NIR1 = until(make_nir, nir.is_valid)
NIR1_P = f"{NIR1[0]} {NIR1[1:3]} {NIR1[3:5]} {NIR1[5:7]} {NIR1[7:10]} {NIR1[10:13]} {NIR1[13:]}"
AADHAAR1 = until(lambda: str(rng.randint(2, 9)) + rand(DIG, 11), aadhaar.is_valid)
AADHAAR1_P = printed(AADHAAR1)
SIN1 = until(lambda: str(rng.randint(1, 7)) + rand(DIG, 8), sin.is_valid)
SIN1_P = f"{SIN1[:3]} {SIN1[3:6]} {SIN1[6:]}"
BSN1 = until(lambda: rand(DIG, 9), bsn.is_valid)
STEUER1 = until(lambda: str(rng.randint(1, 9)) + rand(DIG, 10), idnr.is_valid)
STEUER1_P = f"{STEUER1[:2]} {STEUER1[2:5]} {STEUER1[5:8]} {STEUER1[8:]}"
TFN1 = until(lambda: rand(DIG, 9), tfn.is_valid)
TFN1_P = f"{TFN1[:3]} {TFN1[3:6]} {TFN1[6:]}"
ABN1 = until(lambda: str(rng.randint(1, 9)) + rand(DIG, 10), abn.is_valid)
ABN1_P = f"{ABN1[:2]} {ABN1[2:5]} {ABN1[5:8]} {ABN1[8:]}"
RTN1 = until(lambda: rng.choice(["0", "1", "2", "3"]) + rand(DIG, 8), rtn.is_valid)

# ---------------------------------------------------------------- credentials
B32 = "abcdefghijklmnopqrstuvwxyz234567"
AKIA1 = "AKIA" + rand(UP + "234567", 16)
AKIA2 = "AKIA" + rand(UP + "234567", 16)
ASIA1 = "ASIA" + rand(UP + "234567", 16)
AWS_SECRET1 = rand(ALNUM + "/+", 40)
AWS_SECRET2 = rand(ALNUM + "/+", 40)
GHP1 = "ghp_" + rand(ALNUM, 36)
GHP2 = "ghp_" + rand(ALNUM, 36)
GHO1 = "gho_" + rand(ALNUM, 36)
GHS1 = "ghs_" + rand(ALNUM, 36)
GH_PAT = "github_pat_11" + rand(UP + DIG, 20) + "_" + rand(ALNUM, 59)
XOXB1 = f"xoxb-{rand(DIG, 11)}-{rand(DIG, 13)}-{rand(ALNUM, 24)}"
XOXP1 = f"xoxp-{rand(DIG, 11)}-{rand(DIG, 11)}-{rand(DIG, 13)}-{rand('0123456789abcdef', 32)}"
XOXB2 = f"xoxb-{rand(DIG, 12)}-{rand(DIG, 13)}-{rand(ALNUM, 24)}"
SLACK_HOOK = f"https://hooks.slack.com/services/T{rand(UP + DIG, 8)}/B{rand(UP + DIG, 10)}/{rand(ALNUM, 24)}"
SK_LIVE1 = "sk_live_" + rand(ALNUM, 24)
SK_LIVE2 = "sk_live_51" + rand(ALNUM, 97)
SK_LIVE3 = "sk_live_" + rand(ALNUM, 24)
RK_LIVE1 = "rk_live_" + rand(ALNUM, 24)
RK_LIVE2 = "rk_live_51" + rand(ALNUM, 60)
PTS1 = "pts_" + rand(B32, 32)
PTS2 = "pts_" + rand(B32, 32)
PTS3 = "pts_" + rand(B32, 32)
GOOGLE1 = "AIza" + rand(ALNUM + "-_", 35)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(payload: dict, alg="HS256") -> str:
    head = b64u(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64u(json.dumps(payload, separators=(",", ":")).encode())
    sig = b64u(bytes(rng.randrange(256) for _ in range(32 if alg == "HS256" else 256)))
    return f"{head}.{body}.{sig}"


JWT1 = jwt({"sub": "1048223", "name": "Lena Vogt", "iat": 1716301200})
JWT2 = jwt(
    {"iss": "https://auth.acme-corp.com/", "sub": "auth0|65f1c2", "aud": "api", "exp": 1726500000}, "RS256"
)
JWT3 = jwt({"user_id": 88213, "role": "admin", "exp": 1731000000})


def pem(kind: str, prefix: str, lines: int = 6) -> str:
    raw = bytes(rng.randrange(256) for _ in range(48 * lines))
    body = prefix + base64.b64encode(raw).decode()
    body = body[: 64 * lines]
    rows = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(rows) + f"\n-----END {kind}-----"


PEM_RSA = pem("RSA PRIVATE KEY", "MIIEpAIBAAKCAQEA")
PEM_RSA2 = pem("RSA PRIVATE KEY", "MIIEowIBAAKCAQEA", 4)
PEM_P8 = pem("PRIVATE KEY", "MIIEvgIBADANBgkqhkiG9w0BAQEFAASC")
PEM_EC = pem("EC PRIVATE KEY", "MHcCAQEEI", 3)
PEM_OSSH = pem("OPENSSH PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", 5)
PEM_DSA = pem("DSA PRIVATE KEY", "MIIBuwIBAAKBgQD", 4)
PEM_PGP = pem("PGP PRIVATE KEY BLOCK", "lQOYBGXk", 5).replace(
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
)
PEM_P8_JSON = pem("PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", 4).replace("\n", "\\n")

# ---------------------------------------------------------------- phones (checked below)
PHONES_CHECK: list[tuple[str, str | None]] = []


def ph(number: str, region: str | None = None) -> str:
    PHONES_CHECK.append((number, region))
    return number


# ---------------------------------------------------------------- rows
E = "EMAIL_ADDRESS"
P = "PHONE_NUMBER"
C = "CREDIT_CARD"
I = "IBAN_CODE"  # noqa: E741
IP = "IP_ADDRESS"


def m(t: str, v: str) -> str:
    return f"⟦{t}¦{v}⟧"


POS: list[str] = [
    # --- e-mail
    f"Hi team, please loop in {m(E, 'marta.kowalczyk@brightwave.pl')} on the renewal thread.",
    f'From: "Jonas Eriksson" <{m(E, "jonas.eriksson@nordkraft.se")}>\nSubject: Re: invoice',
    f"Contact: {m(E, 'SUPPORT@Example-Shop.COM')}",
    f"ping me at {m(E, 'dev+staging-alerts@ops.tinylab.io')} if the cron fails again",
    f'{{"id": 4412, "email": "{m(E, "a.nakamura@kyoto-u.ac.jp")}", "verified": false}}',
    f"Bitte schicken Sie die Unterlagen an {m(E, 'buchhaltung@mueller-gmbh.de')}.",
    f"Pour toute question, écrivez à {m(E, 'service.client@laposte.net')}, merci !",
    f"Escríbeme a {m(E, 'lucia_fernandez88@hotmail.es')} cuando puedas.",
    f"2024-05-02 11:04:17 WARN mailer: bounce for <{m(E, 'r.oconnor@eircom.net')}> (550 user unknown)",
    f"reply-to: {m(E, 'noreply@notifications.github.com')}",
    f"[{m(E, 'kim.minji@samsung.co.kr')}] 님이 문서를 공유했습니다.",
    f"Send the CV to {m(E, 'careers@fintech-startup.io')} or {m(E, 'hr.lead@fintech-startup.io')}.",
    f"Il mio indirizzo è {m(E, 'giulia.rossi.1990@libero.it')}",
    f"mailto:{m(E, 'press@theguardian.com')}?subject=Tip",
    f"user {m(E, 'o.petrenko@ukr.net')} requested a password reset at 09:12",
    f"CSV: 1042,Ana,Souza,{m(E, 'ana.souza@uol.com.br')},SP,active",
    f"Mijn e-mailadres is {m(E, 'pieter.devries@ziggo.nl')}.",
    f"メールは {m(E, 'tanaka.hiroshi@docomo.ne.jp')} までお願いします。",
    f"cc: {m(E, 'finance-team@corp.acme.co.uk')}; {m(E, 'cfo@acme.co.uk')}",
    f"Email me: {m(E, 'zoe.w@icloud.com')}. Thanks!",
    # --- phone: US / CA
    f"Call me back at {m(P, ph('(415) 867-2291', 'US'))} after 3pm PST.",
    f"Mobile: {m(P, ph('415-867-2291', 'US'))}",
    f"Our Chicago office: {m(P, ph('(312) 744-5000', 'US'))}, ext. 14",
    f"text {m(P, ph('646.772.3108', 'US'))} when you land",
    f"US support line {m(P, ph('+1 (646) 772-3108'))} (24/7)",
    f"Toll free: {m(P, ph('1-800-275-2273', 'US'))}",
    f"Phone (Toronto): {m(P, ph('+1 416 977 3410'))}",
    f"Please reach our Vancouver team at {m(P, ph('(604) 718-3390', 'CA'))}.",
    f'{{"name": "R. Patel", "phone": "{m(P, ph("+12024561414"))}"}}',
    # --- phone: GB
    f"Ring the London desk on {m(P, ph('+44 20 7946 0321'))} please.",
    f"Tel: {m(P, ph('020 7219 4272', 'GB'))}",
    f"my mobile is {m(P, ph('07911 123456', 'GB'))}, text anytime",
    f"WhatsApp: {m(P, ph('+44 7911 123456'))}",
    f"Manchester branch – Tel. {m(P, ph('0161 832 4410', 'GB'))}",
    f"Phone: {m(P, ph('+44 (0)131 496 0127'))}",
    # --- phone: DE / AT / CH
    f"Rufen Sie uns an: {m(P, ph('+49 30 901820'))}",
    f"Telefon: {m(P, ph('030 90182045', 'DE'))}",
    f"Tel.: {m(P, ph('+49 (0)89 2180 2450'))} | Fax: auf Anfrage",
    f"Handy {m(P, ph('0151 23456789', 'DE'))}",
    f"Erreichbar unter {m(P, ph('+49 171 2345678'))} (auch WhatsApp).",
    f"Ruf mich an unter {m(P, ph('0221 4710359', 'DE'))}, ich bin ab 14 Uhr da.",
    f"Kundendienst Wien: Tel. {m(P, ph('+43 1 5321234'))}",
    f"Mobil: {m(P, ph('0664 1234567', 'AT'))}",
    f"Zürich office: {m(P, ph('+41 44 668 18 00'))}",
    f"Natel: {m(P, ph('079 123 45 67', 'CH'))}",
    # --- phone: FR / BE
    f"Appelez-nous au {m(P, ph('+33 1 42 68 53 00'))}.",
    f"Tél : {m(P, ph('01 42 68 53 00', 'FR'))}",
    f"Mon portable : {m(P, ph('06 12 34 56 78', 'FR'))}",
    f"Standard Marseille {m(P, ph('04 91 55 20 11', 'FR'))} (du lundi au vendredi)",
    f"Bruxelles : tél. {m(P, ph('+32 2 511 22 33'))}",
    f"GSM : {m(P, ph('0470 12 34 56', 'BE'))}",
    # --- phone: ES / PT / IT / NL
    f"Llámame al {m(P, ph('612 345 678', 'ES'))} esta tarde.",
    f"Teléfono de la oficina: {m(P, ph('+34 912 345 678'))}",
    f"Tel. Barcelona: {m(P, ph('+34 93 318 4521'))}",
    f"Telemóvel: {m(P, ph('912 345 678', 'PT'))}",
    f"Lisboa: {m(P, ph('+351 21 321 1234'))}",
    f"Chiamami al {m(P, ph('333 123 4567', 'IT'))}",
    f"Centralino: {m(P, ph('+39 06 6982 1234'))}",
    f"Per informazioni tel. {m(P, ph('+39 02 8901 2345'))}",
    f"Bel me even op {m(P, ph('06-12345678', 'NL'))}.",
    f"Telefoon: {m(P, ph('020-6241111', 'NL'))}",
    f"Amsterdam HQ {m(P, ph('+31 20 624 1111'))}",
    # --- phone: LatAm / Asia / others
    f"Meu celular: {m(P, ph('(21) 98765-4321', 'BR'))}",
    f"Telefone comercial {m(P, ph('+55 11 91234-5678'))}",
    f"Fone: {m(P, ph('(11) 3456-7890', 'BR'))}",
    f"Tel. CDMX: {m(P, ph('+52 55 1234 5678'))}",
    f"Mi teléfono es {m(P, ph('55 1234 5678', 'MX'))}",
    f"Call the Mumbai desk: {m(P, ph('+91-22-2266-1234'))}",
    f"Mobile no. {m(P, ph('+91 98765 43210'))}",
    f"Ph: {m(P, ph('(02) 9374 4000', 'AU'))}",
    f"Give me a bell on {m(P, ph('0412 345 678', 'AU'))}",
    f"Sydney office {m(P, ph('+61 2 9374 4000'))}",
    f"電話：{m(P, ph('03-1234-5678', 'JP'))}（平日 9時〜18時）",
    f"携帯 {m(P, ph('090-1234-5678', 'JP'))}",
    f"Tokyo: {m(P, ph('+81 3-1234-5678'))}",
    f"Tel. {m(P, ph('+48 22 123 45 67'))}",
    f"Zadzwoń: {m(P, ph('+48 601 234 567'))}",
    f"Ring mig på {m(P, ph('+46 70 123 45 67'))}",
    f"Dublin office: {m(P, ph('+353 1 234 5678'))}",
    f"Singapore hotline {m(P, ph('+65 6123 4567'))}",
    f"Cape Town: {m(P, ph('+27 21 123 4567'))}",
    f"北京办公室电话：{m(P, ph('+86 10 1234 5678'))}",
    f"手机 {m(P, ph('+86 138 0013 8000'))}",
    f"서울 사무실 {m(P, ph('+82 2-312-3456'))}",
    f"Lagos: {m(P, ph('+234 803 123 4567'))}",
    f"Buenos Aires cel. {m(P, ph('+54 9 11 2345-6789'))}",
    f"Auckland mobile {m(P, ph('+64 21 123 4567'))}",
    f"Tel Aviv: {m(P, ph('+972 54-612-3456'))}",
    f"Москва, тел. {m(P, ph('+7 495 123-45-67'))}",
    f"İstanbul ofis: {m(P, ph('+90 212 123 45 67'))}",
    f"Dubai: {m(P, ph('+971 50 123 4567'))}",
    f"Manila: {m(P, ph('+63 917 123 4567'))}",
    f"Tlf. {m(P, ph('+45 32 12 34 56'))}",
    f"Oslo sentralbord {m(P, ph('+47 22 12 34 56'))}",
    f"Ring oss på {m(P, ph('08-123 456 78', 'SE'))}",
    f"Call my Irish mobile {m(P, ph('087 123 4567', 'IE'))}",
    # --- cards
    f"Card: {m(C, group(VISA, [4, 4, 4, 4]))} exp 09/27",
    f"pls charge {m(C, VISA2)} for the deposit",
    f"MasterCard {m(C, group(MC, [4, 4, 4, 4], '-'))}, CVV on the back",
    f"new 2-series MC: {m(C, group(MC2, [4, 4, 4, 4]))}",
    f"AMEX {m(C, group(AMEX, [4, 6, 5]))} (corporate)",
    f"amex no spaces {m(C, AMEX2)}",
    f"Discover card ending in {DISC[-4:]}: full number {m(C, group(DISC, [4, 4, 4, 4]))}",
    f"Karte: {m(C, group(JCB, [4, 4, 4, 4]))}",
    f"Diners Club {m(C, group(DINERS, [4, 6, 4]))}",
    f"银联卡号 {m(C, UNIONPAY)}",
    f"Maestro {m(C, group(MAESTRO, [4, 4, 4, 4, 3]))}",
    f'{{"pan": "{m(C, MC3)}", "exp": "11/26"}}',
    f"Número de tarjeta: {m(C, group(VISA3, [4, 4, 4, 4]))}",
    f"карта МИР {m(C, group(MIR, [4, 4, 4, 4]))}",
    f"test card {m(C, '4111 1111 1111 1111')} works in sandbox only",
    # --- IBANs
    f"Bitte überweisen Sie den Betrag auf {m(I, printed(IB['DE']))}.",
    f"IBAN: {m(I, IB['GB'])}",
    f"RIB / IBAN : {m(I, printed(IB['FR']))}",
    f"Cuenta: {m(I, printed(IB['ES']))}",
    f"Coordinate bancarie: IBAN {m(I, IB['IT'])}",
    f"Rekeningnummer {m(I, printed(IB['NL']))} t.n.v. J. Bakker",
    f"Compte {m(I, printed(IB['BE']))}",
    f"IBAN {m(I, printed(IB['CH']))} (UBS)",
    f'{{"iban": "{m(I, IB["AT"])}", "bic": "BKAUATWW"}}',
    f"Numer konta: {m(I, printed(IB['PL']))}",
    f"NIB/IBAN {m(I, printed(IB['PT']))}",
    f"Irish account {m(I, IB['IE'])}, sort code in the letter",
    f"Kontonummer: {m(I, printed(IB['SE']))}",
    f"Norsk konto {m(I, IB['NO'])}",
    f"Dansk IBAN: {m(I, printed(IB['DK']))}",
    f"Tilinumero {m(I, printed(IB['FI']))}",
    # --- IPs
    f"Failed password for root from {m(IP, '185.220.101.47')} port 52814 ssh2",
    f"upstream timed out while connecting to {m(IP, '10.42.7.19')}:8080",
    f'{m(IP, "203.0.113.45")} - - [12/Mar/2024:10:22:31 +0000] "GET /admin HTTP/1.1" 403 199',
    f"DB host is {m(IP, '192.168.1.20')}, replica on {m(IP, '192.168.1.21')}",
    f"listening on http://{m(IP, '127.0.0.1')}:5000",
    f"nameserver {m(IP, '8.8.8.8')}",
    f"IPv6 only: ssh admin@{m(IP, '2001:db8:4006:812::200e')}",
    f"link-local {m(IP, 'fe80::1ff:fe23:4567:890a')} on eth0",
    f"bound to [{m(IP, '::1')}]:443",
    f"X-Forwarded-For: {m(IP, '198.51.100.23')}, {m(IP, '172.16.4.2')}",
    f"client={m(IP, '2a03:2880:f12f:83:face:b00c:0:25de')} status=200",
    f"Peer address {m(IP, '::ffff:192.0.2.128')} accepted",
    f"full form {m(IP, '2001:0db8:85a3:0000:0000:8a2e:0370:7334')}",
    f"L'adresse IP du serveur est {m(IP, '51.91.12.204')}.",
    f"La IP de la impresora: {m(IP, '192.168.0.115')}",
    f'{{"remote_addr": "{m(IP, "34.117.59.81")}", "ua": "curl/8.4.0"}}',
    # --- SSN / ids
    f"SSN: {m('US_SSN', SSN1)}",
    f"Employee social security number {m('US_SSN', SSN2)} on file.",
    f"W-4 form — SSN {m('US_SSN', SSN3)}, filing single",
    f'{{"ssn": "{m("US_SSN", SSN4)}", "dob": "1984-07-12"}}',
    f"ITIN {m('US_ITIN', ITIN1)}",
    f"DNI: {m('NIF', DNI1)}",
    f"Mi DNI es {m('NIF', DNI2)} y el NIE de mi mujer {m('NIF', NIE1)}",
    f"NHS number: {m('UK_NHS', NHS1_P)}",
    f"Codice fiscale: {m('IT_FISCAL_CODE', CF[0])}",
    f"CF {m('IT_FISCAL_CODE', CF[1])} – residenza Milano",
    f"CPF: {m('BR_CPF', CPF1_F)}",
    f"Meu CPF é {m('BR_CPF', CPF2_F)}",
    f"N° de sécurité sociale : {m('FR_NIR', NIR1_P)}",
    f"Aadhaar: {m('IN_AADHAAR', AADHAAR1_P)}",
    f"SIN {m('CA_SIN', SIN1_P)}",
    f"BSN: {m('NL_BSN', BSN1)}",
    f"Steuer-ID: {m('DE_TAX_ID', STEUER1_P)}",
    f"TFN {m('AU_TFN', TFN1_P)}",
    f"ABN {m('AU_ABN', ABN1_P)}",
    f"ABA routing number {m('ABA_ROUTING_NUMBER', RTN1)}",
    # --- credentials
    f"aws_access_key_id = {m('AMAZON_AWS_ACCESS_KEY_ID', AKIA1)}",
    f"export AWS_ACCESS_KEY_ID={m('AMAZON_AWS_ACCESS_KEY_ID', AKIA2)}\n"
    f"export AWS_SECRET_ACCESS_KEY={m('AMAZON_AWS_SECRET_ACCESS_KEY', AWS_SECRET1)}",
    f'aws_secret_access_key = "{m("AMAZON_AWS_SECRET_ACCESS_KEY", AWS_SECRET2)}"',
    f"temporary creds: {m('AMAZON_AWS_ACCESS_KEY_ID', ASIA1)} (expires in 1h)",
    f"oops I pasted my token {m('GITHUB_ACCESS_TOKEN', GHP1)} in the issue, revoking",
    f"git clone https://{m('GITHUB_ACCESS_TOKEN', GHP2)}@github.com/acme/infra.git",
    f"GITHUB_TOKEN={m('GITHUB_ACCESS_TOKEN', GHS1)}",
    f"oauth token: {m('GITHUB_ACCESS_TOKEN', GHO1)}",
    f"fine-grained PAT {m('GITHUB_ACCESS_TOKEN', GH_PAT)}",
    f"SLACK_BOT_TOKEN={m('SLACK_TOKEN', XOXB1)}",
    f"Authorization: Bearer {m('SLACK_TOKEN', XOXP1)}",
    f'slack:\n  token: "{m("SLACK_TOKEN", XOXB2)}"',
    f"webhook_url: {m('SLACK_WEBHOOK', SLACK_HOOK)}",
    f"stripe.api_key = '{m('STRIPE_API_KEY', SK_LIVE1)}'",
    f"STRIPE_SECRET_KEY={m('STRIPE_API_KEY', SK_LIVE2)}",
    f"curl https://api.stripe.com/v1/charges -u {m('STRIPE_API_KEY', SK_LIVE3)}:",
    f"restricted key for the reporting job: {m('STRIPE_RESTRICTED_API_KEY', RK_LIVE1)}",
    f'{{"stripe_rk": "{m("STRIPE_RESTRICTED_API_KEY", RK_LIVE2)}"}}',
    f"Authorization: Bearer {m('JWT_TOKEN', JWT1)}",
    f"id_token={m('JWT_TOKEN', JWT2)}&state=xyz",
    f'{{"access_token": "{m("JWT_TOKEN", JWT3)}", "token_type": "Bearer"}}',
    f"PANGEA_TOKEN={m('PANGEA_TOKEN', PTS1)}",
    f"use token {m('PANGEA_TOKEN', PTS2)} for the audit project",
    f'{{"pangea": {{"token": "{m("PANGEA_TOKEN", PTS3)}", "domain": "aws.us.pangea.cloud"}}}}',
    f"GOOGLE_MAPS_KEY={m('GOOGLE_API_KEY', GOOGLE1)}",
    f"Here is the deploy key:\n{m('RSA_PRIVATE_KEY', PEM_RSA)}\nplease keep it safe",
    f"{m('RSA_PRIVATE_KEY', PEM_RSA2)}",
    f"server.key contents:\n{m('PRIVATE_KEY', PEM_P8)}\n",
    f"{m('SSH_EC_PRIVATE_KEY', PEM_EC)}\n",
    f"cat ~/.ssh/id_ed25519\n{m('PRIVATE_KEY', PEM_OSSH)}\n$ ",
    f"legacy dsa key:\n{m('SSH_DSA_PRIVATE_KEY', PEM_DSA)}",
    f"{m('PGP_PRIVATE_KEY_BLOCK', PEM_PGP)}",
    f'{{"type": "service_account", "private_key": "{m("PRIVATE_KEY", PEM_P8_JSON)}\\n", "client_email": '
    f'"{m(E, "deployer@my-proj-4412.iam.gserviceaccount.com")}"}}',
    f"DATABASE_URL=postgres://app_user:{m('BASIC_AUTH', 'Tr0ub4dor-3xK')}@db-prod.internal:5432/app",
    f"mongodb+srv://admin:{m('BASIC_AUTH', 'q8Wv2LpZ7rTn')}@cluster0.ab1cd.mongodb.net/test?retryWrites=true",
    f"mysql://root:{m('BASIC_AUTH', 'hunter2Secure9')}@{m(IP, '10.0.0.12')}:3306/shop",
    f"amqps://svc-orders:{m('BASIC_AUTH', 'Zk$29!aLpq')}@rabbit.prod.example.net/vhost",
    f"proxy: http://jdoe:{m('BASIC_AUTH', 'Winter2024!')}@proxy.corp.local:3128",
    f"redis://default:{m('BASIC_AUTH', 's3cr3tRedisPw77')}@cache.internal:6379/0",
    f'db:\n  user: billing\n  password: "{m("SECRET", "N7u$kq2Lx9#w")}"',
    f'{{"username": "svc_report", "password": "{m("SECRET", "G4v!x9Qm2Lp")}"}}',
    f"DB_PASSWORD={m('SECRET', 'v9KxQ2mLz7Rt')}",
    f"Server=tcp:sql01.corp.local,1433;Database=crm;User ID=svc_crm;Password={m('SECRET', 'Vq7mZ2pLw9Xk')};",
    f'api_key = "{m("SECRET", "c29f1b7e8a4d4e0f9b3a61d2e8f7a5c4")}"',
    # --- mixed
    f"Customer {m(E, 'h.schulz@web.de')}, Tel. {m(P, ph('+49 40 32808 0'))}, IBAN {m(I, printed(IB['DE']))}",
    f"Refund to card {m(C, group(VISA, [4, 4, 4, 4]))}; customer phone {m(P, ph('(415) 867-2291', 'US'))}",
    f"login from {m(IP, '91.198.174.192')} by {m(E, 'w.admin@wikimedia.org')}",
    f"Ticket #88213: user {m(E, 'tom.baker@gmail.com')} (SSN {m('US_SSN', SSN5)}) cannot log in",
    f"Nom: Dupont, tél. {m(P, ph('+33 6 12 34 56 78'))}, IBAN {m(I, printed(IB['FR']))}",
    f"leaked in #general: {m('AMAZON_AWS_ACCESS_KEY_ID', AKIA1)} and {m('SLACK_TOKEN', XOXB1)}",
    f"Paciente: DNI {m('NIF', DNI1)}, tel. {m(P, ph('+34 612 345 678'))}, correo {m(E, 'pac.garcia@gmail.com')}",
    f"payroll.csv row 17: Jane Roe, SSN {m('US_SSN', SSN6)}, acct {m(I, IB['GB'])}",
]

NEG: list[str] = [
    # order / invoice / tracking / ticket numbers
    "Your order #112-4567890-1234567 has shipped.",
    "Invoice INV-2024-004512 is due on 30 April.",
    "Tracking number: 1Z999AA10123456784 (UPS Ground)",
    "FedEx tracking 7712 3456 7890 — delivered",
    "USPS: 9400 1000 0000 0000 0000 00",
    "Ticket JIRA-48213 moved to In Progress",
    "Case 02847163 assigned to Tier 2",
    "Order number: 4158672291 (please quote it in every e-mail)",
    "Bestellnummer 30049187562, Lieferung in 3–5 Werktagen",
    "Numéro de commande : 2024-FR-0098812",
    "Pedido nº 000184223 enviado",
    "PO 4500123987 approved by procurement",
    "RMA-77120-B received at warehouse 3",
    "Booking reference: QX7R2M",
    "Confirmation code 8812-4471-2290",
    "Ref: 20240315-000123",
    "Auftragsnummer: 100-2233-4455",
    "注文番号：1234-5678-9012",
    "Reservation #55219870 for 2 guests",
    "Customer ID 0049217731",
    # timestamps / dates
    "2024-03-15T10:22:31.123Z INFO request completed in 184 ms",
    "Last login: Fri Mar 15 10:22:31 2024",
    "created_at=1710498151 updated_at=1710498999",
    "ts: 1700000000123",
    "Meeting on 15.03.2024 um 14:30 Uhr",
    "Date: 03/15/2024 2:30 PM EST",
    "Le rendez-vous est le 12/04/2024 à 09h30.",
    "2024年3月15日 10時22分",
    "cron: 0 */6 * * *",
    "Duration 01:23:45.678",
    "period 2023-01-01/2023-12-31",
    "Uptime: 12 days, 04:22:17",
    # version strings
    "Upgraded OpenSSL to 3.0.13 and nginx to 1.25.4",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Firmware version 2.4.10.1 is available for your router",
    "Microsoft Windows [Version 10.0.19045.3803]",
    "pip install requests==2.31.0 urllib3==2.2.1",
    "Build 1.0.0.4521 passed all checks",
    "node v18.17.0, npm 9.6.7",
    "Android 14 (UP1A.231005.007)",
    "Release 2024.3.1 notes: bug fixes",
    "assembly version 4.0.0.0, file version 4.8.9037.0",
    "dependency: lodash@4.17.21",
    "Python 3.11.4 (main, Jun  7 2023, 12:45:48) [GCC 11.3.0] on linux",
    # identifiers / hashes
    "request_id=3f2b8c1e-9a4d-4e7b-8c2f-1a6d9e0b5c73",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "Merge pull request #4412 from acme/feature-x (a1b2c3d)",
    "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    "MD5 (setup.exe) = 5d41402abc4b2a76b9719d911017c592",
    f"trace_id={uuid.UUID(int=rng.getrandbits(128), version=4)} span_id=00f067aa0ba902b7",
    f'etag: "{hashlib.sha1(b"heldout").hexdigest()}"',
    f"checksum {hashlib.sha256(b'release-1.2.3.tar.gz').hexdigest()}  release-1.2.3.tar.gz",
    "docker pull ghcr.io/acme/api@sha256:1c9c1e42e3a6b7c0a8b1f5e2c8c4a2e1d6b8f3a9c7e5d2b1a0f9e8d7c6b5a4f3",
    "Object key: uploads/2024/03/8d7a6f5e-4c3b-2a19-8f7e-6d5c4b3a2910.png",
    "session=eyJ1c2VyIjoiYm9iIn0",
    "Base64 of 'hello world' is aGVsbG8gd29ybGQ=",
    "ISBN 978-3-16-148410-0",
    "EAN 4006381333931",
    "GTIN: 00012345678905",
    "OID 1.3.6.1.4.1.311.21.7",
    "VIN 1HGCM82633A004352",
    "Serial no. SN-8842-XK-2291",
    "SKU AB-4411-XL-BLK",
    "Part number 0451-2290-13",
    "Lot 23B0412, best before 2025-06",
    "HS code 8471.30.0100",
    # failing checksums
    f"Card number {group(bad_card('4', 16), [4, 4, 4, 4])} was declined (invalid number).",
    f"pan={bad_card('5425', 16)}",
    f"Amex {group(bad_card('37', 15), [4, 6, 5])} rejected by the form",
    f"Kartennummer {bad_card('4539', 16)} ungültig",
    "The card 1234 5678 9012 3456 is obviously fake.",
    "ID 0000 0000 0000 0000",
    f"IBAN {printed(bad_iban('DE'))} – Prüfziffer falsch",
    f"iban: {bad_iban('GB')} (checksum failed)",
    f"IBAN invalide : {printed(bad_iban('FR'))}",
    f"IBAN no válido {bad_iban('ES')}",
    "Example: DE00 0000 0000 0000 0000 00",
    "SSN 000-12-3456 is not a valid number",
    "SSN 666-45-1234 is never issued",
    "social security: 123-00-4567 rejected (group 00)",
    "SSN field: 078-05-0000",
    "DNI 12345678 (falta la letra)",
    "NHS number 123 456 7890 failed validation",
    "CPF 111.111.111-11 inválido",
    # numbers / math / prices / postal
    "Total: $1,299.99 incl. tax",
    "Preis: 49,90 € (inkl. MwSt.)",
    "Le loyer est de 1 250,00 € par mois.",
    "Precio: 2.499.000 COP",
    "合計 ¥12,800（税込）",
    "3.14159 * 2 = 6.28318",
    "The population grew from 7,900,000,000 to 8,045,311,447",
    "x = 0.5 * (a + b) / 2.0",
    "resolution 1920x1080 @ 144 Hz",
    "Coordinates: 48.8566, 2.3522",
    "lat=40.712776 lon=-74.005974",
    "London SW1A 1AA, United Kingdom",
    "10115 Berlin, Deutschland",
    "75008 Paris",
    "San Francisco, CA 94103-1234",
    "Postcode 2000 NSW",
    "Temperature: -3.5 °C, humidity 87 %",
    "Score 98.6 / 100",
    "Weight 72.4 kg, height 1.82 m",
    "Sales Q1: 1.234.567 units",
    "Room 1201, floor 12, building 3",
    "dial 911 in an emergency",
    "extension 4412",
    "Conference PIN: 482 193 775#",
    "Zoom meeting ID: 845 2291 0073",
    "Teams conference ID 123 456 789#",
    "Flight LH 401 departs 10:55 from gate B42",
    "Account balance: 12 345,67 PLN",
    "Mileage 128,774 km",
    # netmask / MAC / code
    "netmask 255.255.255.0 broadcast",
    "MAC 3c:22:fb:9a:01:7e",
    "HWaddr 00:1A:2B:3C:4D:5E",
    "std::vector<std::string> names;",
    "ratio 16:9, time 12:30:45",
    "Use localhost:8080 for development.",
    "http://localhost:3000/api/v1/users",
    "IP address: not assigned",
    "version 256.1.1.1 is not an IP",
    "999.999.999.999 is not a valid address",
    "Set the IP field to the address of your server.",
    # placeholders / password words
    "Forgot your password? Click the link to reset it.",
    "password: ********",
    "Passwort: ******** (verborgen)",
    "DB_PASSWORD=${DB_PASSWORD}",
    "api_key = os.environ['API_KEY']",
    'token = os.getenv("GITHUB_TOKEN")',
    "Authorization: Bearer YOUR_API_KEY",
    "curl -H 'X-API-Key: <your-api-key>' https://api.example.com",
    "export PANGEA_TOKEN=<your token here>",
    "password_hint: name of first pet",
    "secret_name: prod/db/credentials",
    "Your password must contain at least 8 characters, one digit and one symbol.",
    "La contraseña debe tener al menos 12 caracteres.",
    "Le mot de passe a été modifié avec succès.",
    "パスワードを忘れた場合はリセットしてください。",
    "postgres://app_user@db-prod.internal:5432/app",
    "postgresql://localhost/mydb",
    "password=changeme",
    "Set STRIPE_SECRET_KEY to sk_live_... in production",
    "AWS_ACCESS_KEY_ID=AKIA................",
    "GITHUB_TOKEN=ghp_xxx",
    "Use a token like pts_... from the Pangea console",
    "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n-----END CERTIFICATE-----",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEXAMPLEKEYDATAonlyPUBLICpart\n-----END PUBLIC KEY-----",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@laptop",
    # e-mail lookalikes
    "icon@2x.png and logo@3x.png",
    "follow us @acme_support on X",
    "npm i react@18.2.0",
    "Meet me @ 5pm at the café",
    "user at example dot com",
    "the @Override annotation",
    # misc multilingual chatter
    "Kannst du mir bitte die Folien bis Freitag schicken?",
    "Merci pour votre commande, elle sera expédiée demain.",
    "¿Nos vemos el martes a las 10?",
    "Grazie mille, a presto!",
    "Obrigado pelo contato, retornaremos em breve.",
    "Dank je wel voor je bericht.",
    "明日の会議は10時からです。",
    "会议改到下午三点。",
    "Спасибо, получил ваше письмо.",
    "Build #4821 failed: 3 tests, 0 errors, 2 skipped",
    '{"status": "ok", "count": 1250, "next_page": 2}',
    "HTTP/1.1 404 Not Found",
    "error code 0x80070005 (access denied)",
    "Chapter 3, pages 112–148",
    "Matrix: [[1, 2], [3, 4]]",
]


# ---------------------------------------------------------------- assemble
MARK = re.compile(r"⟦([A-Z_]+)¦(.*?)⟧", re.S)


def parse(marked: str):
    text, ents, pos = [], [], 0
    out_len = 0
    for mt in MARK.finditer(marked):
        before = marked[pos : mt.start()]
        text.append(before)
        out_len += len(before)
        value = mt.group(2)
        ents.append({"type": mt.group(1), "start": out_len, "end": out_len + len(value)})
        text.append(value)
        out_len += len(value)
        pos = mt.end()
    text.append(marked[pos:])
    s = "".join(text)
    assert "⟦" not in s and "⟧" not in s and "¦" not in s
    return s, ents


def main() -> None:
    for number, region in PHONES_CHECK:
        parsed = phonenumbers.parse(number, region)
        assert phonenumbers.is_valid_number(parsed), number
    assert luhn.is_valid("4111111111111111")
    rows = []
    for i, marked in enumerate(POS):
        text, ents = parse(marked)
        assert ents, marked
        rows.append({"id": f"xp{i:03d}", "kind": "positive", "text": text, "entities": ents})
    for i, text in enumerate(NEG):
        assert "⟦" not in text
        rows.append({"id": f"xn{i:03d}", "kind": "negative", "text": text, "entities": []})
    with OUT.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    npos = sum(r["kind"] == "positive" for r in rows)
    nent = sum(len(r["entities"]) for r in rows)
    print(f"wrote {OUT.name}: {npos} positive, {len(rows) - npos} negative, {nent} entities")


if __name__ == "__main__":
    main()
