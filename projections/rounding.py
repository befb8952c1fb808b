"""Exact rounding: half up (away from zero) to a number of decimals, on exact fractions."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from math import floor

__all__ = ["ratio_half_up", "round_half_up"]


def round_half_up(value: Fraction, places: int = 2) -> Decimal:
    """``value`` rounded half away from zero to ``places`` decimals, exactly."""
    scale = 10**places
    scaled = abs(value) * scale
    units = floor(scaled + Fraction(1, 2))
    sign = -1 if value < 0 else 1
    return Decimal(sign * units).scaleb(-places)


def ratio_half_up(num: int, den: int, places: int = 2) -> float:
    """``num / den`` (``den`` > 0) rounded half away from zero to ``places`` decimals, as the
    float nearest that decimal: ``float(round_half_up(Fraction(num, den), places))`` in
    integers (≈ 20× faster; a delays list rounds hundreds of rows per query)."""
    scale: int = 10**places
    units = (2 * abs(num) * scale + den) // (2 * den)
    return (units if num >= 0 else -units) / scale  # int / int: correctly rounded
