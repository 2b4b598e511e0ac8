"""How every table, macro and notebook prints a number: one percent format and one "n/a"."""

from __future__ import annotations

NA = "n/a"  # a value that does not apply or was not computed


def pct(value: float | None, digits: int = 2) -> str:
    """A percentage (or percentage points) without the sign: `97.5` → `97.50`; None → n/a."""
    return NA if value is None else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 2) -> str:
    """A difference with its sign, `+3.69` or `-0.42`; one that rounds to zero is `+0.00`."""
    if value is None:
        return NA
    text = f"{abs(value):.{digits}f}"
    return f"-{text}" if value < 0 and text.strip("0.") else f"+{text}"


def count(value: int | None) -> str:
    """An integer with thousands separators, `10000` → `10,000`."""
    return NA if value is None else f"{int(value):,}"


def or_na(value: object) -> str:
    """Any value as text; None → n/a."""
    return NA if value is None else str(value)
