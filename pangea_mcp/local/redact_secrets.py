"""Local redaction: credentials and API keys, found with detect-secrets' plugin patterns (never its network
verification)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from detect_secrets.plugins import keyword
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from pangea_mcp.local.redact_hits import Hit


@dataclass(frozen=True)
class _Pattern:
    field_type: str
    pattern: re.Pattern[str]
    group: int = 0
    #: The plugins match fixed-length prefixes of tokens; the whole token is redacted.
    extend: bool = True


def _plugin(detector: object, index: int = 0) -> re.Pattern[str]:
    denylist: tuple[re.Pattern[str], ...] = tuple(detector.denylist)  # type: ignore[attr-defined]
    return denylist[index]


# Pangea's entity names where Pangea has one; the others are named after the service that issues them.
_PATTERNS: tuple[_Pattern, ...] = (
    _Pattern("AMAZON_AWS_ACCESS_KEY_ID", _plugin(AWSKeyDetector, 0)),
    _Pattern("AMAZON_AWS_SECRET_ACCESS_KEY", _plugin(AWSKeyDetector, 1), group=1, extend=False),
    # The plugin wants the key quoted; .env files, shell exports and INI/YAML files leave it bare.
    _Pattern(
        "AMAZON_AWS_SECRET_ACCESS_KEY",
        re.compile(
            r"(?i)(?<![a-z0-9])aws[\w.-]{0,20}?(?:secret|key|token)[\w.-]{0,20}?\s*(?::=|=>|[:=])[ \t]*"
            r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        group=1,
        extend=False,
    ),
    _Pattern("GITHUB_ACCESS_TOKEN", _plugin(GitHubTokenDetector)),
    # Fine-grained personal access tokens, which the plugin predates: github_pat_ + 22 + _ + 59 characters.
    _Pattern(
        "GITHUB_ACCESS_TOKEN", re.compile(r"(?<![\w-])github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}(?![\w-])")
    ),
    _Pattern("SLACK_TOKEN", _plugin(SlackDetector, 0)),
    _Pattern("SLACK_WEBHOOK", _plugin(SlackDetector, 1)),
    _Pattern("MAILCHIMP_API_KEY", _plugin(MailchimpDetector)),
    _Pattern("TWILIO_API_KEY", _plugin(TwilioKeyDetector, 0)),
    _Pattern("TWILIO_API_KEY", _plugin(TwilioKeyDetector, 1)),
    _Pattern("SQUARE_OAUTH_SECRET", _plugin(SquareOAuthDetector)),
    _Pattern("BASIC_AUTH", _plugin(BasicAuthDetector), group=1, extend=False),
    # detect-secrets leaves out passwords with RFC 3986 sub-delimiters ($, !, ...), which userinfo allows.
    _Pattern("BASIC_AUTH", re.compile(r"\b[A-Za-z][\w+.-]*://[^\s/:@]+:([^\s/@]+)@"), group=1, extend=False),
    _Pattern("GITLAB_TOKEN", _plugin(GitLabTokenDetector)),
    _Pattern("OPENAI_API_KEY", _plugin(OpenAIDetector)),
    _Pattern("SENDGRID_API_KEY", _plugin(SendGridDetector)),
    _Pattern("PYPI_TOKEN", _plugin(PypiTokenDetector, 0)),
    _Pattern("PYPI_TOKEN", _plugin(PypiTokenDetector, 1)),
    _Pattern("AZURE_STORAGE_KEY", _plugin(AzureStorageKeyDetector)),
    _Pattern("DISCORD_BOT_TOKEN", _plugin(DiscordBotTokenDetector)),
    _Pattern("TELEGRAM_BOT_TOKEN", _plugin(TelegramBotTokenDetector)),
    # Not covered by detect-secrets: Pangea's own token shape (as pangea_mcp.logs scrubs it) and
    # Google API keys (fixed "AIza" prefix, 39 characters).
    _Pattern("PANGEA_TOKEN", re.compile(r"\bpt[siu]_[a-z0-9]{32}\b")),
    _Pattern("GOOGLE_API_KEY", re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![\w-])")),
)
_STRIPE = _plugin(StripeDetector)
_JWT = _plugin(JwtTokenDetector)
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_-]")
_BASE64URL = re.compile(r"[A-Za-z0-9_=-]*")

# Private keys: detect-secrets finds the BEGIN line; the whole armoured block is redacted.
_KEY_TYPES = {
    "RSA": "RSA_PRIVATE_KEY",
    "DSA": "SSH_DSA_PRIVATE_KEY",
    "EC": "SSH_EC_PRIVATE_KEY",
    "PGP": "PGP_PRIVATE_KEY_BLOCK",
}
_KEY_FOOTER = re.compile(
    r"-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|---- END SSH2 ENCRYPTED PRIVATE KEY ----"
)
_KEY_HEADERS = tuple(_plugin(PrivateKeyDetector, i) for i in range(len(PrivateKeyDetector.denylist)))

SECRET_TYPES: tuple[str, ...] = (
    *dict.fromkeys(p.field_type for p in _PATTERNS),
    "STRIPE_API_KEY",
    "STRIPE_RESTRICTED_API_KEY",
    "JWT_TOKEN",
    *_KEY_TYPES.values(),
    "PRIVATE_KEY",
    "SECRET",
)


def _token_end(text: str, end: int) -> int:
    while end < len(text) and _TOKEN_CHAR.match(text, end):
        end += 1
    return end


def _patterns(text: str) -> Iterator[Hit]:
    for entry in _PATTERNS:
        for match in entry.pattern.finditer(text):
            start, end = match.span(entry.group)
            if entry.extend:
                if start and _TOKEN_CHAR.match(text[start - 1]):
                    continue  # inside a longer token: not this service's key
                end = _token_end(text, end)
            yield Hit(entry.field_type, start, end, 0.95)
    for match in _STRIPE.finditer(text):
        kind = "STRIPE_RESTRICTED_API_KEY" if match.group().startswith("rk") else "STRIPE_API_KEY"
        yield Hit(kind, match.start(), _token_end(text, match.end()), 0.95)
    for match in _JWT.finditer(text):
        # The plugin's pattern stops before the signature; the token runs to the end of its third part.
        end = match.end()
        if text[match.start() : end].count(".") == 1 and text[end : end + 1] == ".":
            end += 1
        tail = _BASE64URL.match(text, end)
        end = tail.end() if tail else end
        token = text[match.start() : end].rstrip(".")
        if JwtTokenDetector.is_formally_valid(token):
            yield Hit("JWT_TOKEN", match.start(), match.start() + len(token), 0.95)


def _private_keys(text: str) -> Iterator[Hit]:
    for header in _KEY_HEADERS:
        for match in header.finditer(text):
            line_start = text.rfind("\n", 0, match.start()) + 1
            begin = text.rfind("-----", line_start, match.start())
            start = begin if begin >= 0 else line_start
            label = re.match(r"BEGIN (\w+) PRIVATE KEY", match.group())
            field_type = _KEY_TYPES.get(label.group(1) if label else "", "PRIVATE_KEY")
            closing = _KEY_FOOTER.search(text, match.end())
            # Without its END line the key runs to the end of the text: never leave key material behind.
            end = closing.end() if closing else len(text)
            yield Hit(field_type, start, end, 1.0)


# Generic "password = '...'" assignments, with detect-secrets' keyword patterns, kept only when the value
# looks like a credential rather than a reference, a placeholder or a name.
_QUOTED = keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP
_UNQUOTED = keyword.CONFIG_DENYLIST_REGEX_TO_GROUP
_NOT_A_VALUE = re.compile(
    r"^(?:[*xX•#.?_-]+|none|null|nil|true|false|undefined|required|optional|redacted|hidden|changeme?)$"
    r"|\$\{|\{\{|^<.*>$|^%\w|^\$\w|\b(?:os\.environ|getenv|process\.env|env\()",
    re.IGNORECASE,
)
_KEY_NAME = re.compile(r"[\w-]*(?:key|pass|pwd|secret|contrase)[\w-]*", re.IGNORECASE)
# "password_hint = ...", "secret_name: ..." describe a secret; they do not hold one.
_DESCRIPTIVE_KEY = re.compile(
    r"(?:name|id|ids|path|file|url|uri|env|type|field|hint|length|len|policy|label|ref|arn|version|"
    r"prompt|reset|expiry|expires|rotation|manager|store|count)$",
    re.IGNORECASE,
)


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _classes(value: str) -> int:
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )


def _credential(value: str, quoted: bool) -> bool:
    if any(c.isspace() for c in value) or _NOT_A_VALUE.search(value) or len(value) < 6:
        return False
    if quoted:
        return _classes(value) >= 2 or len(value) >= 12
    return len(value) >= 8 and (_classes(value) >= 3 or (_entropy(value) >= 3.5 and _classes(value) >= 2))


def _keyword_secrets(text: str) -> Iterator[Hit]:
    for table in (_QUOTED, _UNQUOTED):
        for pattern, group in table.items():
            for match in pattern.finditer(text):
                start, end = match.span(group)
                value = text[start:end]
                quoted = start > 0 and text[start - 1] in "'\"`"
                if not quoted:
                    value = re.split(r"[\s;,&]", value, maxsplit=1)[0]
                    end = start + len(value)
                key = _KEY_NAME.search(match.group())
                if key and _DESCRIPTIVE_KEY.search(key.group()):
                    continue
                if _credential(value, quoted):
                    yield Hit("SECRET", start, end, 0.7)


def secrets(text: str) -> Iterator[Hit]:
    yield from _patterns(text)
    yield from _private_keys(text)
    yield from _keyword_secrets(text)
