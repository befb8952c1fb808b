"""Exact rounding: half up (away from zero) to a number of decimals, on exact fractions."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from math import floor

__all__ = ["round_half_up"]


def round_half_up(value: Fraction, places: int = 2) -> Decimal:
    """``value`` rounded half away from zero to ``places`` decimals, exactly."""
    scale = 10**places
    scaled = abs(value) * scale
    units = floor(scaled + Fraction(1, 2))
    sign = -1 if value < 0 else 1
    return Decimal(sign * units).scaleb(-places)
