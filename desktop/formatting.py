"""Number formats shared by the tables and labels (display only, never stored)."""

from __future__ import annotations

import math

_CURRENCY_SIGNS = {"USD": "$", "EUR": "\u20ac", "GBP": "\u00a3", "JPY": "\u00a5", "CAD": "C$"}


def money(value: float | None, currency: str = "USD", decimals: int = 2) -> str:
    """``$1,234.56`` (or ``1,234.56 CHF`` for a currency without a sign); '' for None."""
    if value is None or not math.isfinite(value):
        return ""
    sign = "-" if value < 0 else ""
    text = f"{abs(value):,.{decimals}f}"
    prefix = _CURRENCY_SIGNS.get(currency)
    return f"{sign}{prefix}{text}" if prefix else f"{sign}{text} {currency}"


def percent(value: float | None, decimals: int = 1) -> str:
    """A fraction as percent: 0.1234 -> ``12.3%``; '' for None or NaN."""
    if value is None or not math.isfinite(value):
        return ""
    return f"{value * 100:,.{decimals}f}%"


def shares(value: float | None) -> str:
    """Whole shares with separators, fractional ones with up to 4 decimals."""
    if value is None or not math.isfinite(value):
        return ""
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def parse_number(text: object) -> float:
    """Read a number typed by a user: ``1,234.5``, ``$1,234``, ``12%`` (-> 12.0), ``(5)``.

    Raises
    ------
    ValueError
        With a message saying what was typed, when it is not a finite number.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a number")
    if isinstance(text, int | float):
        value = float(text)
    else:
        raw = str(text).strip()
        cleaned = raw.replace(",", "").replace("$", "").replace("%", "").replace(" ", "")
        cleaned = cleaned.replace("\u20ac", "").replace("\u00a3", "")
        negative = cleaned.startswith("(") and cleaned.endswith(")")
        if negative:
            cleaned = cleaned[1:-1]
        try:
            value = float(cleaned)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
        if negative:
            value = -value
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value
