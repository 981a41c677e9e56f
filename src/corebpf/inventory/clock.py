"""Kernel boot-based timestamps to wall-clock time.

The kernel stamps programs with ``ktime_get_boottime_ns()`` (nanoseconds since boot, counting
suspend). The wall-clock instant is ``now(REALTIME) - (now(BOOTTIME) - stamp)``; both clocks are read
back to back so the offset is exact to a few microseconds, unlike ``/proc/stat``'s whole-second btime.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone


def boot_offset_ns() -> int:
    """Nanoseconds to add to a CLOCK_BOOTTIME stamp to get a CLOCK_REALTIME (Unix epoch) stamp."""
    real = time.clock_gettime_ns(time.CLOCK_REALTIME)
    boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    return real - boot


def boot_ns_to_datetime(stamp_ns: int, offset_ns: int | None = None) -> datetime:
    """The UTC wall-clock time of a boot-based kernel stamp (``offset_ns`` from :func:`boot_offset_ns`)."""
    if offset_ns is None:
        offset_ns = boot_offset_ns()
    return datetime.fromtimestamp((stamp_ns + offset_ns) / 1e9, tz=timezone.utc)


__all__ = ["boot_offset_ns", "boot_ns_to_datetime"]
