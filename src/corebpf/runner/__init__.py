"""Run a BPF object: attach all its programs and stream their events and ``bpf_printk`` lines.

    >>> from corebpf.runner import Session
    >>> with corebpf.load("prog.bpf.o") as obj, Session(obj) as session:
    ...     for item in session.items(duration=10):
    ...         print(item)

Modules: ``session`` (:class:`Session`: attach, readers, the wait loop), ``record_types`` (which BTF
type each buffer's records have), ``trace_pipe`` (non-blocking tracefs reader), ``records`` (the
items handed out). ``corebpf run`` is the command-line face.
"""

from __future__ import annotations

from .record_types import buffer_maps, parse_type_options, record_type_for
from .records import Event, Item, Lost, TraceLine
from .session import Session, uses_printk
from .trace_pipe import TracePipe, parse_trace_line

__all__ = ["Session", "Event", "Lost", "TraceLine", "Item", "TracePipe", "parse_trace_line", "buffer_maps",
           "parse_type_options", "record_type_for", "uses_printk"]
