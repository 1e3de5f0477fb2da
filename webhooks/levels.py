"""Which alert levels a measured value has reached, pure (no Django).

Rule (API.md "Webhooks and alerts"): each fixed threshold is a level; a recurring threshold ``r`` is never a
level at its own value, but at the highest fixed threshold plus each multiple of ``r`` (fixed 1000 and 3000,
recurring 2500: 1000, 3000, 5500, 8000, ...). With no fixed threshold, the recurring levels are r, 2r, 3r...
A level is reached when the value is at or above it.
"""

from __future__ import annotations

from decimal import Decimal

#: At most this many levels are reported by one evaluation (a value far beyond a small recurring threshold);
#: the next evaluations report the rest, lowest first.
MAX_LEVELS = 1000


def levels_reached(
    value: Decimal, *, fixed: list[Decimal], recurring: Decimal | None, exclude: frozenset[Decimal] = frozenset()
) -> list[Decimal]:
    """The levels at or below ``value``, ascending, without those in ``exclude`` (already triggered)."""
    reached = sorted({f for f in fixed if f <= value} - exclude)
    if recurring is not None and recurring > 0:
        level = max(fixed, default=Decimal(0)) + recurring
        while level <= value and len(reached) < MAX_LEVELS:
            if level not in exclude:
                reached.append(level)
            level += recurring
    return reached[:MAX_LEVELS]
