"""Run-time statistics of programs (``run_time_ns``, ``run_cnt``).

The kernel counts only while statistics are enabled, because timing every run costs a little: either
``kernel.bpf_stats_enabled=1`` or, scoped to a process, an fd from ``BPF_ENABLE_STATS``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from .._sys import ops
from .._sys.fd import FD

_SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"


@dataclass(frozen=True)
class RunStats:
    """Cumulative counters of one program."""

    run_time_ns: int
    run_cnt: int
    recursion_misses: int

    @property
    def avg_ns(self) -> float:
        """Average nanoseconds per run (0 when it never ran)."""
        return self.run_time_ns / self.run_cnt if self.run_cnt else 0.0


def stats_enabled() -> bool:
    """True when the ``kernel.bpf_stats_enabled`` sysctl is on (fds from :func:`enable_stats` don't show here)."""
    try:
        with open(_SYSCTL) as f:
            return f.read().strip() not in ("", "0")
    except OSError:
        return False


@contextlib.contextmanager
def enable_stats() -> Iterator[FD]:
    """Count run time and runs of every program while the ``with`` block lasts.

    >>> with enable_stats():
    ...     prog.test_run(data, repeat=100)
    """
    fd = ops.enable_stats()
    try:
        yield fd
    finally:
        fd.close()


__all__ = ["RunStats", "stats_enabled", "enable_stats"]
