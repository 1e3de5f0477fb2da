"""The retry schedule of a delivery, pure: exponential backoff with jitter (no Django).

A delivery is tried at once, then after each failure it waits the next delay below, each stretched or shrunk
at random by up to ``JITTER`` (so receivers that failed together are not hit again all at the same instant):

    try:    1    2     3      4       5      6      7       8
    wait:   -    5 s   5 min  30 min  2 h    5 h    10 h    10 h

Eight tries over 27 h 35 min 5 s without jitter; with the largest shrink (-10 %), still more than 24 h.
After the eighth failure the delivery is ``failed`` (it can be sent again from the admin).
"""

from __future__ import annotations

from datetime import timedelta

DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(DELAYS) + 1
JITTER = 0.10


def retry_delay(attempts: int, *, rand: float) -> timedelta | None:
    """How long to wait after the ``attempts``-th failed try (1-based); None when none is left.

    ``rand`` is a uniform draw in [0, 1): the delay is the schedule's times ``1 + JITTER * (2 * rand - 1)``.
    """
    if attempts < 1:
        raise ValueError("attempts starts at 1")
    if attempts >= MAX_ATTEMPTS:
        return None
    if not 0 <= rand < 1:
        raise ValueError("rand must be in [0, 1)")
    base = DELAYS[attempts - 1]
    factor = 1 + JITTER * (2 * rand - 1)
    return timedelta(microseconds=round(base / timedelta(microseconds=1) * factor))
