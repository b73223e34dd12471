"""Capacity levels with hysteresis (docs/rules.md, capacity levels and hysteresis)."""

from __future__ import annotations

from collections.abc import Sequence


def reached(threshold: float, count: int, capacity: int) -> bool:
    """Threshold ``t`` is reached when count > 0 and count * 100 >= t * capacity."""
    return count > 0 and count * 100 >= threshold * capacity


def held(threshold: float, hysteresis: float, count: int, capacity: int) -> bool:
    """Threshold ``t`` is held when count > 0 and count * 100 >= (t - hysteresis) * capacity."""
    return count > 0 and count * 100 >= (threshold - hysteresis) * capacity


def highest_reached(count: int, capacity: int, thresholds: Sequence[int]) -> int:
    return max((t for t in thresholds if reached(t, count, capacity)), default=0)


def next_level(level: int, count: int, capacity: int, thresholds: Sequence[int], hysteresis: float) -> int:
    """Go up to the largest reached threshold; come down only to the largest threshold still held."""
    up = highest_reached(count, capacity, thresholds)
    if up > level:
        return up
    hold = max((t for t in thresholds if t <= level and held(t, hysteresis, count, capacity)), default=0)
    return hold if hold < level else level
