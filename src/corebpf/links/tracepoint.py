"""Tracepoints (``SEC("tracepoint/<category>/<name>")``): a perf event on the tracepoint's id."""

from __future__ import annotations

from typing import Any, Optional

from .._sys import _generated as g
from .._sys._generated import PerfType
from ._tracefs import event_id
from .link import Link
from .perf_event import attach_perf_event, open_perf_event


def tracepoint(program: Any, category: str, name: Optional[str] = None, *, cookie: int = 0) -> Link:
    """Attach a ``tracepoint`` program to ``category/name`` (also accepted as one ``"cat/name"`` string).

    Mounts tracefs when needed. A missing tracepoint raises
    :class:`~corebpf.links.TargetNotFoundError` listing the closest existing ones.
    """
    if name is None:
        category, sep, name = category.partition("/")
        if not sep:
            raise ValueError(f"tracepoint must be 'category/name', got {category!r}")
    tp_id = event_id(category, name)
    # a counting event (no sample_period): sampling every hit would raise a perf overflow, and an irq_work
    # wakeup on CPU 0, for each event -- real cost that the program's own time does not show
    attr = g.PerfEventAttr(type=PerfType.TRACEPOINT, config=tp_id)
    pfd = open_perf_event(attr, -1, 0)  # a tracepoint event runs the program on every CPU
    return attach_perf_event(program, pfd, f"tracepoint {category}/{name}", cookie=cookie)


__all__ = ["tracepoint"]
