"""What a run session hands out: buffer events, lost-sample notices and ``trace_pipe`` lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

__all__ = ["Event", "Lost", "TraceLine", "Item"]


@dataclass(frozen=True)
class Event:
    """One record a program sent into a ring or perf buffer.

    ``value`` is the record decoded through its BTF type (a :class:`~corebpf.btf.values.StructValue`
    for structs) or, when no record type is known, the raw ``bytes``. ``cpu`` is the CPU whose perf
    buffer held it (None for ring buffers, which are shared by all CPUs). ``type_name`` is the C
    name of the record type (None for raw bytes).
    """

    map: str
    value: Any
    cpu: Optional[int] = None
    type_name: Optional[str] = None

    @property
    def decoded(self) -> bool:
        """True when ``value`` went through a record type (False: raw bytes)."""
        return self.type_name is not None


@dataclass(frozen=True)
class Lost:
    """Samples the kernel dropped because a perf buffer was full (``PERF_RECORD_LOST``)."""

    map: str
    count: int
    cpu: Optional[int] = None


@dataclass(frozen=True)
class TraceLine:
    """One line of tracefs ``trace_pipe`` (``bpf_printk`` output of any program on this host).

    ``line`` is the text as the kernel wrote it; the other fields are parsed from it when it has the
    usual ``comm-pid [cpu] flags timestamp: event: message`` shape, else None (``message`` is then
    the whole line).
    """

    line: str
    message: str
    comm: Optional[str] = None
    pid: Optional[int] = None
    cpu: Optional[int] = None
    timestamp: Optional[float] = None
    event: Optional[str] = None


Item = Union[Event, Lost, TraceLine]
"""Anything :meth:`corebpf.runner.Session.items` yields."""
