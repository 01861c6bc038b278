"""Redaction of personal data and secrets before ticket text leaves for the LLM or enters
the memory (and, unless STORE_ORIGINAL_TEXT is set, before it is stored).

Kinds (REDACT, comma-separated; ``none`` turns it off):

* ``secret``: private key blocks, JSON Web Tokens, AWS access keys, GitHub, Slack, Google and
  Stripe-style tokens, ``Bearer`` credentials, and the value after ``password``, ``pwd``,
  ``passphrase``, ``secret``, ``token`` or ``api key`` (``password: hunter2`` keeps the word);
* ``email``: e-mail addresses;
* ``ip``: IPv4 and IPv6 addresses;
* ``phone``: runs of 9 to 15 digits written as a phone number (not dates, times or versions).

Pure functions: this module must never log the text it sees.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

KINDS = ("secret", "email", "ip", "phone")

_SECRETS = [
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{30,}\b"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),  # Slack
    re.compile(r"\bAIza[0-9A-Za-z_-]{30,}\b"),  # Google API key
    re.compile(r"\b(?:sk|pk|rk)_(?:live|test)_[0-9A-Za-z]{16,}\b"),  # Stripe-style
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{12,}"),
]
# "password: hunter2", "pwd=abc", "token -> x": the word stays, the value goes. After "is" or a
# plain space only a value that looks like a secret goes: "my password is hunter2" loses hunter2,
# "password reset" and "the token is expired" stay as they are.
_LABELLED = re.compile(
    r"(?i)\b(pass(?:word|wd|phrase)?|pwd|secret|token|api[\s_-]?key|access[\s_-]?key)"
    r"(\s*(?:=>|->|=|:)\s*|\s+is\s+|\s+)"
    r"(?!\[)(\"[^\"]+\"|'[^']+'|\S+)"
)
_LOOKS_SECRET = re.compile(r"^(?=.{6,})(?=.*[\d\W_]).*$")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])")
_IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])"
    r"|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4}(?![\w:])"
)
_PHONE = re.compile(r"(?<![\w.+-])\+?\(?\d[\d\s().-]{7,18}\d(?![\w.-])")
_DATE_OR_TIME = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$|^\d{1,2}:\d{2}")


def _phone(match: re.Match[str]) -> str:
    candidate = match.group(0)
    digits = sum(c.isdigit() for c in candidate)
    if not 9 <= digits <= 15 or _DATE_OR_TIME.match(candidate.strip("+( ")):
        return candidate
    return "[PHONE]"


def _labelled(match: re.Match[str]) -> str:
    separator, value = match.group(2), match.group(3)
    explicit = separator.strip() in {":", "=", "->", "=>"}
    quoted = value[:1] in {"'", '"'}
    if explicit or quoted or _LOOKS_SECRET.match(value.rstrip(".,;")):
        return f"{match.group(1)}{separator}[SECRET]"
    return match.group(0)


def redact(text: str, kinds: Iterable[str] = KINDS) -> str:
    wanted = set(kinds)
    if "secret" in wanted:
        for pattern in _SECRETS:
            text = pattern.sub("[SECRET]", text)
        text = _LABELLED.sub(_labelled, text)
    if "email" in wanted:
        text = _EMAIL.sub("[EMAIL]", text)
    if "ip" in wanted:
        text = _IPV6.sub("[IP]", _IPV4.sub("[IP]", text))
    if "phone" in wanted:
        text = _PHONE.sub(_phone, text)
    return text


def parse_kinds(value: str) -> tuple[str, ...]:
    names = tuple(k.strip() for k in value.split(",") if k.strip())
    if names in {("none",), ()}:
        return ()
    unknown = set(names) - set(KINDS)
    if unknown:
        raise ValueError(f"REDACT: unknown kind(s) {sorted(unknown)}; use {', '.join(KINDS)} or none")
    return names


def redactor(kinds: tuple[str, ...]) -> Callable[[str], str]:
    if not kinds:
        return lambda text: text
    return lambda text: redact(text, kinds)
