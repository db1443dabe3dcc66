"""Minor units of currencies (ISO 4217 exponents; Telegram Stars ``XTR`` have none).

Telegram Payments report amounts in the currency's smallest unit: 2900 USD is $29.00,
2900 JPY is ¥2900, 50 XTR is 50 Stars.
"""

from __future__ import annotations

import math
import re

_ZERO = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
                   "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF", "XTR"})
_THREE = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
_CODE = re.compile(r"^[A-Z]{3}$")


def exponent(currency: str) -> int:
    if currency in _ZERO:
        return 0
    if currency in _THREE:
        return 3
    return 2


def check_currency(currency: str) -> str:
    code = currency.strip().upper()
    if not _CODE.match(code):
        raise ValueError(f"currency must be a three-letter code such as USD or XTR, "
                         f"got {currency!r}")
    return code


def from_minor(amount: int, currency: str) -> float:
    """2900 USD -> 29.0"""
    return amount / 10 ** exponent(currency)


def to_minor(value: float, currency: str) -> int:
    """29.0 USD -> 2900 (rounded to the nearest minor unit)."""
    if not math.isfinite(value):
        raise ValueError(f"value must be a finite number, got {value!r}")
    return round(value * 10 ** exponent(currency))
