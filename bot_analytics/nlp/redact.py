"""Redaction of personal data in free text before it is stored.

Emails, phone numbers, Luhn-valid card numbers and IBANs with a valid check sum become
``[email]``, ``[phone]``, ``[card]`` and ``[iban]``. Check sums keep order numbers and
dates from being taken for cards and accounts.
"""

from __future__ import annotations

import re

_DIGIT = re.compile(r"\d")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d])(?:\d[ -]?){12,18}\d(?![\d])")
# International numbers with a leading +, North American style (3-3-4 with a separator
# or parentheses), and bare runs of 10 or more digits.
_PHONE = re.compile(
    r"(?<![\w+])\+\d(?:[\s().-]{0,2}\d){6,14}(?!\d)"
    r"|(?<!\d)(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\d)"
    r"|(?<![\d.])\d{10,15}(?![\d.])"
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _card(m: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", m.group())
    return "[card]" if 13 <= len(digits) <= 19 and luhn_valid(digits) else m.group()


def _iban(m: re.Match[str]) -> str:
    return "[iban]" if iban_valid(m.group()) else m.group()


def redact(text: str) -> str:
    """Replace personal data in ``text`` with placeholders."""
    if not text:
        return text
    # Cheap pre-checks keep the common case (no digits, no @) at one scan.
    if "@" in text:
        text = _EMAIL.sub("[email]", text)
    if _DIGIT.search(text):
        text = _IBAN.sub(_iban, text)
        text = _CARD.sub(_card, text)
        text = _PHONE.sub("[phone]", text)
    return text


def clean_text(text: str) -> str:
    """Make text storable everywhere: drop NUL (PostgreSQL refuses it) and replace lone
    surrogates, which cannot be encoded as UTF-8."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text
